package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

// Contract describes a mapstore backend for RunContract, the tests every backend passes: the
// rules of package mapstore (round trips, idempotence, missing keys, copies of the caller's
// slices, batch calls, the key listing, callbacks' errors, contexts).
type Contract struct {
	// New returns an empty store of the backend (a fresh index, directory...). Required.
	New func(t *testing.T) mapstore.Store
	// Value returns the value to store under key number i in round r (its format is the
	// backend's: a JSON document for Elasticsearch). nil: arbitrary bytes.
	Value func(i, r int) []byte
	// AnyKey says the backend takes every key, empty and binary ones included; otherwise the
	// tests use printable keys.
	AnyKey bool
	// Timeout bounds each test. Default 1 minute.
	Timeout time.Duration
}

// RunContract runs the contract tests as subtests of t.
func RunContract(t *testing.T, c Contract) {
	if c.Value == nil {
		c.Value = func(i, r int) []byte { return fmt.Appendf(nil, "v%d.%d\x00\xff", i, r) }
	}
	if c.Timeout == 0 {
		c.Timeout = time.Minute
	}
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%05d", i) }
	ctxOf := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		t.Cleanup(cancel)
		return ctx
	}
	load := func(t *testing.T, ctx context.Context, st mapstore.Store, k []byte) ([]byte, bool) {
		t.Helper()
		l, ok := st.(mapstore.Loader)
		if !ok {
			t.Skip("the store is not a mapstore.Loader")
		}
		v, found, err := l.Load(ctx, k)
		if err != nil {
			t.Fatalf("Load %q: %v", k, err)
		}
		return v, found
	}
	mustLoad := func(t *testing.T, ctx context.Context, st mapstore.Store, k, want []byte) {
		t.Helper()
		v, found := load(t, ctx, st, k)
		if !found || !bytes.Equal(v, want) {
			t.Fatalf("Load %q = %q (found %v), want %q", k, v, found, want)
		}
	}
	mustMiss := func(t *testing.T, ctx context.Context, st mapstore.Store, k []byte) {
		t.Helper()
		if v, found := load(t, ctx, st, k); found {
			t.Fatalf("Load %q = %q, want not found", k, v)
		}
	}

	t.Run("RoundTrip", func(t *testing.T) {
		st, ctx := c.New(t), ctxOf(t)
		mustMiss(t, ctx, st, key(1))
		for r := range 2 { // the second round replaces the first
			if err := st.Store(ctx, key(1), c.Value(1, r)); err != nil {
				t.Fatal(err)
			}
			mustLoad(t, ctx, st, key(1), c.Value(1, r))
		}
		if err := st.Store(ctx, key(1), c.Value(1, 1)); err != nil { // idempotent
			t.Fatalf("storing the same value again: %v", err)
		}
		mustLoad(t, ctx, st, key(1), c.Value(1, 1))
		if err := st.Delete(ctx, key(1)); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, ctx, st, key(1))
		if err := st.Delete(ctx, key(1)); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
		if err := st.Delete(ctx, key(2)); err != nil {
			t.Fatalf("deleting a key never stored: %v", err)
		}
	})

	t.Run("CallerOwnsSlices", func(t *testing.T) {
		st, ctx := c.New(t), ctxOf(t)
		k, v := key(7), c.Value(7, 0)
		kb, vb := bytes.Clone(k), bytes.Clone(v)
		if err := st.Store(ctx, kb, vb); err != nil {
			t.Fatal(err)
		}
		for i := range kb {
			kb[i] = 'X'
		}
		for i := range vb {
			vb[i] = 'X'
		}
		mustLoad(t, ctx, st, k, v)
	})

	if c.AnyKey {
		t.Run("AnyKey", func(t *testing.T) {
			st, ctx := c.New(t), ctxOf(t)
			keys := [][]byte{{}, {0}, {0xff, 0xfe, 0}, []byte("a\nb"), bytes.Repeat([]byte{0x80}, 200)}
			for i, k := range keys {
				if err := st.Store(ctx, k, c.Value(i, 0)); err != nil {
					t.Fatalf("Store %q: %v", k, err)
				}
			}
			for i, k := range keys {
				mustLoad(t, ctx, st, k, c.Value(i, 0))
			}
		})
	}

	t.Run("Batch", func(t *testing.T) {
		st, ctx := c.New(t), ctxOf(t)
		b, ok := st.(mapstore.BatchStore)
		if !ok {
			t.Skip("the store is not a mapstore.BatchStore")
		}
		const n = 250
		var keys, values [][]byte
		for i := range n {
			keys, values = append(keys, key(i)), append(values, c.Value(i, 0))
		}
		if err := b.StoreAll(ctx, keys, values); err != nil {
			t.Fatal(err)
		}
		if err := b.StoreAll(ctx, keys, values); err != nil {
			t.Fatalf("StoreAll again: %v", err)
		}
		// Replace the even keys, delete every third key (and keys never stored).
		var ek, ev, dk [][]byte
		want := map[string][]byte{}
		for i := range n {
			want[string(key(i))] = c.Value(i, 0)
			if i%2 == 0 {
				ek, ev = append(ek, key(i)), append(ev, c.Value(i, 1))
				want[string(key(i))] = c.Value(i, 1)
			}
		}
		if err := b.StoreAll(ctx, ek, ev); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i += 3 {
			dk = append(dk, key(i))
			delete(want, string(key(i)))
		}
		dk = append(dk, key(n+1), key(n+2))
		if err := b.DeleteAll(ctx, dk); err != nil {
			t.Fatal(err)
		}
		if err := b.DeleteAll(ctx, dk); err != nil {
			t.Fatalf("DeleteAll again: %v", err)
		}
		for i := range n + 3 {
			if v, ok := want[string(key(i))]; ok {
				mustLoad(t, ctx, st, key(i), v)
			} else if i%7 == 0 {
				mustMiss(t, ctx, st, key(i))
			}
		}
		if al, ok := st.(mapstore.AllLoader); ok {
			ask := append(slices.Clone(keys), key(n+5))
			got := map[string][]byte{}
			err := al.LoadAll(ctx, ask, func(k, v []byte) error {
				if _, dup := got[string(k)]; dup {
					return fmt.Errorf("LoadAll gave %q twice", k)
				}
				got[string(k)] = v
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("LoadAll gave %d keys, want %d", len(got), len(want))
			}
			for k, v := range want {
				if !bytes.Equal(got[k], v) {
					t.Fatalf("LoadAll %q = %q, want %q", k, got[k], v)
				}
			}
			stop := errors.New("stop")
			calls := 0
			if err := al.LoadAll(ctx, keys, func(k, v []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
				t.Fatalf("LoadAll with a callback failing: %v after %d calls, want the callback's error after 1", err, calls)
			}
		}
		if kl, ok := st.(mapstore.KeyLoader); ok {
			got := map[string]int{}
			if err := kl.LoadAllKeys(ctx, func(k []byte) error { got[string(k)]++; return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("LoadAllKeys listed %d keys, want %d", len(got), len(want))
			}
			for k, times := range got {
				if _, ok := want[k]; !ok || times != 1 {
					t.Fatalf("LoadAllKeys listed %q %d times (stored %v)", k, times, ok)
				}
			}
			stop := errors.New("stop")
			calls := 0
			if err := kl.LoadAllKeys(ctx, func([]byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
				t.Fatalf("LoadAllKeys with a callback failing: %v after %d calls, want the callback's error after 1", err, calls)
			}
		}
	})

	t.Run("EmptyStore", func(t *testing.T) {
		st, ctx := c.New(t), ctxOf(t)
		if kl, ok := st.(mapstore.KeyLoader); ok {
			n := 0
			if err := kl.LoadAllKeys(ctx, func([]byte) error { n++; return nil }); err != nil || n != 0 {
				t.Fatalf("LoadAllKeys of an empty store: %d keys, %v", n, err)
			}
		}
		if al, ok := st.(mapstore.AllLoader); ok {
			if err := al.LoadAll(ctx, [][]byte{key(1)}, func(k, _ []byte) error { return fmt.Errorf("got %q", k) }); err != nil {
				t.Fatalf("LoadAll of an empty store: %v", err)
			}
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		st := c.New(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := st.Store(ctx, key(1), c.Value(1, 0)); err == nil {
			// A store may finish a call that needs no waiting; it must not report a failure it did not have.
			mustLoad(t, ctxOf(t), st, key(1), c.Value(1, 0))
		}
	})
}
