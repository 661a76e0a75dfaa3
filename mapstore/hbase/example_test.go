package hbase_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/hbase"
)

// A write-behind map of raw crashes stored in HBase, keyed by crash ID with Socorro's row
// layout. (It needs an HBase master at GRIDMAP_HBASE_ADDR, so it has no checked output.)
func Example() {
	ctx := context.Background()
	client, err := hbase.NewClient(hbase.Config{Addrs: []string{os.Getenv("GRIDMAP_HBASE_ADDR")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	store, err := hbase.NewStore(ctx, client, hbase.StoreConfig{
		Table:       "crash_reports",
		Family:      "raw_data",
		Keys:        hbase.SocorroKeys{},
		CreateTable: true,
		TableOptions: hbase.TableOptions{
			SplitKeys:    hbase.SocorroKeys{}.SplitKeys(),
			MOBThreshold: 100 << 10,
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	member, err := gridmap.Start(ctx, gridmap.Config{Maps: map[string]dmap.MapConfig{
		"raw_crashes": {Store: store, Persistence: mapstore.Config{WriteDelay: time.Second}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	raw, err := gridmap.GetMap[string, []byte](member, "raw_crashes")
	if err != nil {
		fmt.Println(err)
		return
	}
	// Acknowledged at once, stored in HBase about a second later.
	err = raw.Put(ctx, "de1bb258-cbbf-4589-a673-34f800160918", []byte(`{"ProductName":"Firefox"}`))
	fmt.Println(err)
}

// The client on its own: a batch of puts as one Multi request per region server, then a scan.
func ExampleClient_ApplyAll() {
	ctx := context.Background()
	client, err := hbase.NewClient(hbase.Config{Addrs: []string{"127.0.0.1:16000"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	if err := client.EnsureTable(ctx, "example", "f"); err != nil {
		fmt.Println(err)
		return
	}
	var batch []hbase.Mutation
	for i := range 1000 {
		batch = append(batch, hbase.Mutation{
			Row:     fmt.Appendf(nil, "row%04d", i),
			Family:  "f",
			Columns: []hbase.Column{{Qualifier: []byte("v"), Value: fmt.Appendf(nil, "value %d", i)}},
		})
	}
	if err := client.ApplyAll(ctx, "example", batch); err != nil {
		fmt.Println(err)
		return
	}
	n := 0
	err = client.Scan(ctx, "example", hbase.ScanOptions{Prefix: []byte("row00"), KeysOnly: true}, func(hbase.Row) error {
		n++
		return nil
	})
	fmt.Println(n, err)
}
