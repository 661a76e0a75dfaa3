package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore/memstore"
)

func TestFaultInjection(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	boom := errors.New("boom")
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"store works", func() error { return s.Store(ctx, []byte("a"), []byte("1")) }, nil},
		{"fail next 2: first", func() error { s.FailNext(2, boom); return s.Store(ctx, []byte("a"), []byte("2")) }, boom},
		{"fail next 2: second", func() error { _, _, err := s.Load(ctx, []byte("a")); return err }, boom},
		{"fail next 2: used up", func() error { return s.Store(ctx, []byte("a"), []byte("3")) }, nil},
		{"down", func() error { s.Down(); return s.StoreAll(ctx, [][]byte{[]byte("b")}, [][]byte{[]byte("1")}) }, memstore.ErrDown},
		{"down loads fail too", func() error { return s.LoadAllKeys(ctx, func([]byte) error { return nil }) }, memstore.ErrDown},
		{"up again", func() error { s.Up(); return s.DeleteAll(ctx, [][]byte{[]byte("zz")}) }, nil},
		{"injected default error", func() error { s.FailNext(1, nil); return s.Delete(ctx, []byte("a")) }, memstore.ErrInjected},
	}
	for _, st := range steps {
		if err := st.do(); !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: got %v, want %v", st.name, err, st.want)
		}
	}
	if v, ok := s.Get([]byte("a")); !ok || string(v) != "3" {
		t.Fatalf("a = %q %v, want 3", v, ok)
	}
	calls := s.CallsFor("a")
	if len(calls) != 5 || calls[1].Err == nil || string(calls[3].Value) != "3" || calls[4].Op != memstore.OpDelete {
		t.Fatalf("calls for a: %+v", calls)
	}
	if n := s.Count(memstore.OpStore); n != 3 {
		t.Fatalf("%d Store calls, want 3", n)
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	s := memstore.New()
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.Store(ctx, []byte("a"), []byte("1")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if s.Len() != 0 {
		t.Fatal("a cancelled store wrote")
	}
}

func TestLoaders(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	for i := range 5 {
		s.Put(fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i))
	}
	var keys []string
	if err := s.LoadAllKeys(ctx, func(k []byte) error { keys = append(keys, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[k0 k1 k2 k3 k4]" {
		t.Fatalf("keys %v", keys)
	}
	got := map[string]string{}
	err := s.LoadAll(ctx, [][]byte{[]byte("k1"), []byte("k3"), []byte("missing")}, func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	})
	if err != nil || len(got) != 2 || got["k1"] != "v1" || got["k3"] != "v3" {
		t.Fatalf("LoadAll: %v %v", got, err)
	}
	if _, found, err := s.Load(ctx, []byte("missing")); found || err != nil {
		t.Fatalf("Load missing: %v %v", found, err)
	}
	for _, k := range []string{"k1", "k3"} {
		if n := len(s.CallsFor(k)); n != 1 {
			t.Fatalf("%s loaded %d times", k, n)
		}
	}
}
