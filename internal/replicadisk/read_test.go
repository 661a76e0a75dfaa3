package replicadisk

import (
	"bytes"
	"testing"
)

// Value reads what the last committed batch left, in the right partition, life and map only.
func TestValue(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := d.Batch(3, 2)
	b.Set(Entry{Map: "m", Key: []byte("k"), Value: []byte("v1"), ExpireAt: 42})
	b.Set(Entry{Map: "m", Key: []byte("gone"), Value: []byte("x")})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b = d.Batch(3, 2)
	b.Set(Entry{Map: "m", Key: []byte("k"), Value: []byte("v2"), ExpireAt: 43})
	b.Delete("m", []byte("gone"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	v, exp, ok, err := d.Value(3, 2, "m", []byte("k"))
	if err != nil || !ok || !bytes.Equal(v, []byte("v2")) || exp != 43 {
		t.Fatalf("Value = %q %d %v %v, want v2 43", v, exp, ok, err)
	}
	for _, c := range []struct {
		part uint32
		life uint64
		m, k string
	}{{3, 2, "m", "gone"}, {4, 2, "m", "k"}, {3, 1, "m", "k"}, {3, 2, "n", "k"}, {3, 2, "m", "k2"}} {
		if v, _, ok, err := d.Value(c.part, c.life, c.m, []byte(c.k)); err != nil || ok {
			t.Fatalf("Value(%+v) = %q %v %v, want none", c, v, ok, err)
		}
	}
	d.Close()
	if _, _, _, err := d.Value(3, 2, "m", []byte("k")); err != ErrClosed {
		t.Fatalf("Value after Close: %v", err)
	}
}
