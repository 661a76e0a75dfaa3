// Command embed is the README's embedding example: one member, one map.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/gridmap/gridmap"
)

func main() {
	ctx := context.Background()
	m, err := gridmap.Start(ctx, gridmap.Config{
		// Seeds: []string{"10.0.0.1:7946"}, // gossip addresses of running members
		ExpectMembers: 1, // members that must see each other before the cluster forms
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx) // graceful: hands its partitions to the other members first

	crashes, err := gridmap.GetMap[string, []byte](m, "crashes")
	if err != nil {
		log.Fatal(err)
	}
	if err := crashes.Put(ctx, "bp-6f1c", []byte(`{"product":"Firefox"}`)); err != nil {
		log.Fatal(err)
	}
	v, err := crashes.Get(ctx, "bp-6f1c") // dmap.ErrNotFound if absent
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)
}
