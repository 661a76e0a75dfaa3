package gridmap_test

import (
	"context"
	"fmt"
	"os"

	"github.com/gridmap/gridmap"
)

// A member with a data folder keeps every map that names no store of its own in the folder: a
// cluster started again on the same folders has the maps back (docs/restart.md).
func ExampleConfig_dataDir() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gridmap-data")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	for run := range 2 {
		member, err := gridmap.Start(ctx, gridmap.Config{DataDir: dir})
		if err != nil {
			fmt.Println(err)
			return
		}
		crashes, err := gridmap.GetMap[string, string](member, "crashes")
		if err != nil {
			fmt.Println(err)
			return
		}
		if run == 0 {
			err = crashes.Put(ctx, "crash-1", "Firefox 128 on Linux")
		} else {
			var v string
			v, err = crashes.Get(ctx, "crash-1")
			fmt.Println("after the restart:", v)
		}
		if err != nil {
			fmt.Println(err)
		}
		member.Close(ctx)
	}
	// Output: after the restart: Firefox 128 on Linux
}
