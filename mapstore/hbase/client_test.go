package hbase

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	c := testClient(t)
	table := testTable(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, found, err := c.Get(ctx, table, []byte("a"), "f"); err != nil || found {
		t.Fatalf("get missing row: found %v, err %v", found, err)
	}
	if err := c.Apply(ctx, table, Mutation{Row: []byte("a"), Family: "f", Columns: []Column{{Qualifier: []byte("q"), Value: []byte("v1")}}}); err != nil {
		t.Fatal(err)
	}
	row, found, err := c.Get(ctx, table, []byte("a"), "f")
	if err != nil || !found {
		t.Fatalf("get: found %v, err %v", found, err)
	}
	if v, ok := row.Value("f", "q"); !ok || !bytes.Equal(v, []byte("v1")) {
		t.Fatalf("value %q %v", v, ok)
	}
	if err := c.Apply(ctx, table, Mutation{Row: []byte("a"), Delete: true}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := c.Get(ctx, table, []byte("a"), "f"); err != nil || found {
		t.Fatalf("get deleted row: found %v, err %v", found, err)
	}
}
