package hbase

import (
	"bytes"
	"context"
	"math/rand/v2"
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

// TestLargeValue stores and reads back a 20 MB value as raw cell bytes.
func TestLargeValue(t *testing.T) {
	c := testClient(t)
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
}
