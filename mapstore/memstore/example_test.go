package memstore_test

import (
	"context"
	"fmt"

	"github.com/gridmap/gridmap/mapstore/memstore"
)

// A test makes the store fail, then checks how it was called.
func Example() {
	ctx := context.Background()
	store := memstore.New()

	store.Down()
	err := store.Store(ctx, []byte("crash-1"), []byte(`{"signature":"OOM"}`))
	fmt.Println("while down:", err)

	store.Up()
	store.FailNext(1, nil)
	err = store.Store(ctx, []byte("crash-1"), []byte(`{"signature":"OOM"}`))
	fmt.Println("injected:", err)

	err = store.Store(ctx, []byte("crash-1"), []byte(`{"signature":"OOM"}`))
	fmt.Println("then:", err)

	value, found, _ := store.Load(ctx, []byte("crash-1"))
	fmt.Println(string(value), found)
	for _, c := range store.CallsFor("crash-1") {
		fmt.Println(c.N, c.Op, c.Err)
	}
	// Output:
	// while down: memstore: store is down
	// injected: memstore: injected failure
	// then: <nil>
	// {"signature":"OOM"} true
	// 1 Store memstore: store is down
	// 2 Store memstore: injected failure
	// 3 Store <nil>
	// 4 Load <nil>
}
