package gridmap_test

import (
	"context"
	"fmt"

	"github.com/gridmap/gridmap"
)

// A single member founds a cluster; more members would join it through Config.Seeds.
func Example() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)

	reports, err := gridmap.GetMap[string, []byte](member, "reports")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := reports.Put(ctx, "crash-1", []byte(`{"product":"Firefox"}`)); err != nil {
		fmt.Println(err)
		return
	}
	v, err := reports.Get(ctx, "crash-1")
	fmt.Println(string(v), err)
	// Output: {"product":"Firefox"} <nil>
}
