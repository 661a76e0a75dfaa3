package mapstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// refusingStore stores into a memstore every value except those starting with "bad", which it
// refuses for good, as a database refuses a document its schema cannot take.
type refusingStore struct {
	mem *memstore.Store
}

func (s refusingStore) split(keys, values [][]byte) (okK, okV [][]byte, rej *mapstore.RejectedError) {
	rej = &mapstore.RejectedError{}
	for i, k := range keys {
		if bytes.HasPrefix(values[i], []byte("bad")) {
			rej.Keys = append(rej.Keys, bytes.Clone(k))
			rej.Reasons = append(rej.Reasons, fmt.Errorf("value %q refused", values[i]))
			continue
		}
		okK, okV = append(okK, k), append(okV, values[i])
	}
	return okK, okV, rej
}

func (s refusingStore) StoreAll(ctx context.Context, keys, values [][]byte) error {
	k, v, rej := s.split(keys, values)
	if len(k) > 0 {
		if err := s.mem.StoreAll(ctx, k, v); err != nil {
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

// singleStore has no StoreAll, so the Flusher calls Store per entry.
type singleStore struct{ r refusingStore }

func (s singleStore) Store(ctx context.Context, key, value []byte) error {
	return s.r.Store(ctx, key, value)
}

func (s singleStore) Delete(ctx context.Context, key []byte) error { return s.r.Delete(ctx, key) }

func TestRejectedError(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &mapstore.RejectedError{Keys: [][]byte{[]byte("a"), []byte("b")}, Reasons: []error{errors.New("r1"), errors.New("r2")}})
	if !errors.Is(err, mapstore.ErrRejected) {
		t.Fatal("a wrapped RejectedError does not match ErrRejected")
	}
	if r := mapstore.Rejected(err); r == nil || len(r.Keys) != 2 {
		t.Fatalf("Rejected = %v", r)
	}
	if mapstore.Rejected(errors.New("other")) != nil || errors.Is(errors.New("other"), mapstore.ErrRejected) {
		t.Fatal("another error is a rejection")
	}
	if msg := err.Error(); msg != `wrapped: mapstore: 2 entries rejected for good; "a": r1; "b": r2` {
		t.Fatalf("message %q", msg)
	}
}

// Entries the store refuses for good are counted and not retried; the others are stored and the
// queue drains, with StoreAll and with single calls.
func TestFlusherRejectedEntriesAreNotRetried(t *testing.T) {
	for name, mk := range map[string]func(*memstore.Store) mapstore.Store{
		"batch":  func(m *memstore.Store) mapstore.Store { return refusingStore{mem: m} },
		"single": func(m *memstore.Store) mapstore.Store { return singleStore{refusingStore{mem: m}} },
	} {
		t.Run(name, func(t *testing.T) {
			mem := memstore.New()
			f := startFlusher(t, mapstore.Config{WriteDelay: time.Millisecond}, mk(mem))
			for i := range 20 {
				v := fmt.Sprint("v", i)
				if i%5 == 0 {
					v = fmt.Sprint("bad", i)
				}
				add(t, f, fmt.Sprint("k", i), v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			if err := f.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			s := f.Stats()
			if s.Rejected != 4 || s.Entries != 0 || s.Errors != 0 || mem.Len() != 16 {
				t.Fatalf("stats %+v, %d stored; want 4 rejected, none pending, 16 stored", s, mem.Len())
			}
		})
	}
}
