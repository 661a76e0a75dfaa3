package dmap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// refusingStore stores into a memstore every value except those starting with "bad", which it
// refuses for good (mapstore.RejectedError), as a database refuses a document its schema cannot
// take.
type refusingStore struct{ mem *memstore.Store }

func (s refusingStore) StoreAll(ctx context.Context, keys, values [][]byte) error {
	var okK, okV [][]byte
	rej := &mapstore.RejectedError{}
	for i, k := range keys {
		if bytes.HasPrefix(values[i], []byte("bad")) {
			rej.Keys = append(rej.Keys, bytes.Clone(k))
			rej.Reasons = append(rej.Reasons, fmt.Errorf("value %q refused", values[i]))
			continue
		}
		okK, okV = append(okK, k), append(okV, values[i])
	}
	if len(okK) > 0 {
		if err := s.mem.StoreAll(ctx, okK, okV); err != nil {
			return err
		}
	}
	if len(rej.Keys) > 0 {
		return rej
	}
	return nil
}

func (s refusingStore) Store(ctx context.Context, key, value []byte) error {
	return s.StoreAll(ctx, [][]byte{key}, [][]byte{value})
}
func (s refusingStore) Delete(ctx context.Context, key []byte) error { return s.mem.Delete(ctx, key) }
func (s refusingStore) DeleteAll(ctx context.Context, keys [][]byte) error {
	return s.mem.DeleteAll(ctx, keys)
}

// A write-behind entry the store refuses for good is counted in the persistence stats and not
// retried; the other entries of its batch are stored and the queue drains. With write-through
// the writer gets the refusal and the write is not applied.
func TestStoreRejectionIsCountedNotRetried(t *testing.T) {
	mem := memstore.New()
	st := refusingStore{mem: mem}
	c := newCluster(t, 1, 0, func(cfg *engine.Config) {
		cfg.Maps = map[string]engine.MapConfig{
			"wb": {Store: st, Persistence: mapstore.Config{WriteDelay: time.Millisecond}},
			"wt": {Store: st},
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wb := mustMap[string, string](t, c.Svc(0), "wb")
	for i := range 30 {
		v := fmt.Sprint("v", i)
		if i%10 == 3 {
			v = fmt.Sprint("bad", i)
		}
		if err := wb.Put(ctx, fmt.Sprint("k", i), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ps := c.Svc(0).PersistenceStats("wb")
	if ps.Rejected != 3 || ps.DirtyEntries != 0 || ps.StoreErrors != 0 || !errors.Is(ps.LastRejected, mapstore.ErrRejected) || ps.LastRejectedAt.IsZero() {
		t.Fatalf("stats %+v; want 3 rejected, none dirty, no store errors", ps)
	}
	if mem.Len() != 27 {
		t.Fatalf("%d entries stored, want 27", mem.Len())
	}
	if v, err := wb.Get(ctx, "k3"); err != nil || v != "bad3" {
		t.Fatalf("the map lost the refused entry: %q, %v", v, err)
	}

	wt := mustMap[string, string](t, c.Svc(0), "wt")
	// The owner's error travels as ErrStore with its message (the chain does not cross the wire).
	if err := wt.Put(ctx, "x", "bad"); !errors.Is(err, ErrStore) || !strings.Contains(err.Error(), "rejected for good") {
		t.Fatalf("write-through Put of a refused value: %v, want ErrStore naming the rejection", err)
	}
	if _, err := wt.Get(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused write-through write was applied: %v", err)
	}
}
