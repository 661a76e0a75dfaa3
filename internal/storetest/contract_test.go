package storetest

import (
	"net/http/httptest"
	"testing"

	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// The contract suite runs on memstore, and on memstore behind this package's HTTP client.
func TestContractMemstore(t *testing.T) {
	RunContract(t, Contract{AnyKey: true, New: func(*testing.T) mapstore.Store { return memstore.New() }})
}

func TestContractClient(t *testing.T) {
	RunContract(t, Contract{AnyKey: true, New: func(t *testing.T) mapstore.Store {
		srv := httptest.NewServer(NewServer(memstore.New()))
		c := NewClient(srv.URL)
		t.Cleanup(func() { c.Close(); srv.Close() })
		return c
	}})
}
