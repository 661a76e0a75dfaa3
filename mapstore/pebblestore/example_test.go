package pebblestore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/gridmap/gridmap/mapstore/pebblestore"
)

// Open a store in a data directory, write a batch, read it back.
func Example() {
	dir, err := os.MkdirTemp("", "pebblestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := pebblestore.Open(dir, pebblestore.Options{}) // fsync per call, blobs from 64 KiB
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	dump := make([]byte, 5<<20) // a 5 MB minidump goes to a blob file
	err = store.StoreAll(ctx,
		[][]byte{[]byte("raw/crash-1"), []byte("dump/crash-1")},
		[][]byte{[]byte(`{"product":"Firefox"}`), dump})
	if err != nil {
		log.Fatal(err)
	}
	raw, found, err := store.Load(ctx, []byte("raw/crash-1"))
	fmt.Println(string(raw), found, err)
	d, _, _ := store.Load(ctx, []byte("dump/crash-1"))
	fmt.Println(len(d))
	store.LoadAllKeys(ctx, func(key []byte) error {
		fmt.Println(string(key))
		return nil
	})
	// Output:
	// {"product":"Firefox"} true <nil>
	// 5242880
	// dump/crash-1
	// raw/crash-1
}
