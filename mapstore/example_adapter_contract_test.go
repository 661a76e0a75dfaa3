package mapstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gridmap/gridmap/internal/storetest"
	"github.com/gridmap/gridmap/mapstore"
)

// TestDirStoreContract runs the tests every backend passes against the documented example
// adapter, so docs/mapstore.md shows an adapter that keeps the contract.
func TestDirStoreContract(t *testing.T) {
	storetest.RunContract(t, storetest.Contract{
		New: func(t *testing.T) mapstore.Store { return &dirStore{dir: t.TempDir(), maxValue: 1 << 20} },
		// Keys over maxKey bytes are refused for good (TestDirStoreRejects), so not AnyKey.
	})
}

// TestDirStoreRejects: a batch with a value over the limit writes every other entry and returns
// a *RejectedError naming exactly the refused key, which matches ErrRejected.
func TestDirStoreRejects(t *testing.T) {
	ctx := context.Background()
	s := &dirStore{dir: t.TempDir(), maxValue: 4}
	long := strings.Repeat("k", maxKey+1)
	err := s.StoreAll(ctx, [][]byte{[]byte("a"), []byte("big"), []byte(""), []byte(long)},
		[][]byte{[]byte("1"), []byte("12345"), []byte("3"), []byte("4")})
	if !errors.Is(err, mapstore.ErrRejected) {
		t.Fatalf("StoreAll: %v, want ErrRejected", err)
	}
	r := mapstore.Rejected(err)
	if r == nil || len(r.Keys) != 2 || string(r.Keys[0]) != "big" || !errors.Is(r.Reasons[0], errTooLarge) ||
		string(r.Keys[1]) != long || !errors.Is(r.Reasons[1], errKeyTooLong) {
		t.Fatalf("rejected: %+v", r)
	}
	for key, want := range map[string]bool{"a": true, "big": false, "": true, long: false} {
		if _, found, err := s.Load(ctx, []byte(key)); err != nil || found != want {
			t.Fatalf("Load(%q): found %v, err %v; want found %v", key, found, err, want)
		}
	}
}
