package hbase

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// TestLargeValue stores and reads back a 20 MB value as raw cell bytes, then six of them in one
// batch and one multi-get: 120 MB of answers, more than the server puts in one Multi response
// (hbase.server.scanner.max.result.size, 100 MB), so the rest comes back as
// MultiActionResultTooLarge and is asked for again.
func TestLargeValue(t *testing.T) {
	var logBuf syncBuffer
	c, err := NewClient(Config{Addrs: []string{serverAddr(t)}, Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	table := testTable(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v := randomBytes(7, 20<<20)
	if err := c.Apply(ctx, table, Mutation{Row: []byte("big"), Family: "f", Columns: []Column{{Qualifier: []byte("v"), Value: v}}}); err != nil {
		t.Fatal(err)
	}
	row, found, err := c.Get(ctx, table, []byte("big"), "f")
	if err != nil || !found {
		t.Fatalf("get: found %v, err %v", found, err)
	}
	if got, _ := row.Value("f", "v"); !bytes.Equal(got, v) {
		t.Fatalf("read back %d bytes, want the %d written", len(got), len(v))
	}

	const n = 6
	ms := make([]Mutation, n)
	rows := make([][]byte, n)
	for i := range n {
		rows[i] = fmt.Appendf(nil, "big%d", i)
		ms[i] = Mutation{Row: rows[i], Family: "f", Columns: []Column{{Qualifier: []byte("v"), Value: v[i:]}}}
	}
	if err := c.ApplyAll(ctx, table, ms); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetMany(ctx, table, rows, "f")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if gv, _ := got[i].Value("f", "v"); !bytes.Equal(gv, v[i:]) {
			t.Fatalf("row %d: read back %d bytes, want %d", i, len(gv), len(v)-i)
		}
	}
	if !strings.Contains(logBuf.String(), "MultiActionResultTooLarge") {
		t.Fatalf("the server answered 120 MB in one Multi response; log:\n%s", logBuf.String())
	}
}

// TestMOBTable stores small and large values in a MOB family (cells of 100 KB and more in MOB
// files): reads and scans return them unchanged.
func TestMOBTable(t *testing.T) {
	c := testClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	table := fmt.Sprintf("gridmap_mob_%d_%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	st, err := NewStore(ctx, c, StoreConfig{Table: table, CreateTable: true, TableOptions: TableOptions{MOBThreshold: 100 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.DeleteTable(ctx, table); err != nil {
			t.Logf("delete table %s: %v", table, err)
		}
	})
	values := map[string][]byte{"a-small": randomBytes(1, 1<<10), "b-mb": randomBytes(2, 1<<20), "c-dump": randomBytes(3, 20<<20)}
	var keys, vals [][]byte
	for k, v := range values {
		keys, vals = append(keys, []byte(k)), append(vals, v)
	}
	if err := st.StoreAll(ctx, keys, vals); err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		got, found, err := st.Load(ctx, []byte(k))
		if err != nil || !found || !bytes.Equal(got, v) {
			t.Fatalf("%s: %d bytes, found %v, err %v", k, len(got), found, err)
		}
	}
	n := 0
	if err := c.Scan(ctx, table, ScanOptions{}, func(r Row) error {
		if v, _ := r.Value(DefaultFamily, DefaultQualifier); !bytes.Equal(v, values[string(r.Key)]) {
			return fmt.Errorf("scan %s: %d bytes", r.Key, len(v))
		}
		n++
		return nil
	}); err != nil || n != len(values) {
		t.Fatalf("scan: %d rows, err %v", n, err)
	}
}
