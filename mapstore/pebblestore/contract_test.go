package pebblestore_test

import (
	"testing"

	"github.com/gridmap/gridmap/internal/storetest"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/pebblestore"
)

// TestContract runs the mapstore contract suite every backend passes.
func TestContract(t *testing.T) {
	storetest.RunContract(t, storetest.Contract{AnyKey: true, New: func(t *testing.T) mapstore.Store {
		st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}})
}
