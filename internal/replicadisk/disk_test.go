package replicadisk

import (
	"fmt"
	"testing"
)

func collect(t *testing.T, d *Disk, part uint32, life uint64, pageBytes int) map[string]string {
	t.Helper()
	out := map[string]string{}
	var cursor []byte
	for {
		next, more, err := d.Entries(part, life, cursor, pageBytes, func(e Entry) {
			out[e.Map+"/"+string(e.Key)] = string(e.Value)
		})
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			return out
		}
		cursor = next
	}
}

func TestDiskCopies(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := d.Batch(7, 1)
	for i := range 50 {
		b.Set(Entry{Map: "m", Key: fmt.Appendf(nil, "k%02d", i), Value: []byte("v")})
	}
	b.Set(Entry{Map: "other", Key: []byte("x"), Value: []byte("y")})
	b.SetMark(Mark{Epoch: 3, Seq: 51})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b = d.Batch(8, 1) // a neighbour partition stays apart
	b.Set(Entry{Map: "m", Key: []byte("k00"), Value: []byte("elsewhere")})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b = d.Batch(7, 1)
	b.Delete("m", []byte("k03"))
	b.SetMark(Mark{Epoch: 3, Seq: 52})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	// Small pages: the cursor resumes after the last entry given.
	if got := collect(t, d, 7, 1, 10); len(got) != 50 || got["m/k03"] != "" || got["other/x"] != "y" || got["m/k00"] != "v" {
		t.Fatalf("entries: %d %v", len(got), got)
	}
	if m, ok, err := d.NewestMark(8); err != nil || ok {
		t.Fatalf("partition 8 has no mark, got %v %v %v", m, ok, err)
	}
	// A copy of the next life, incomplete: the newest complete copy is still life 1's.
	b = d.Batch(7, 2)
	b.Set(Entry{Map: "m", Key: []byte("k00"), Value: []byte("new")})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if m, ok, err := d.NewestMark(7); err != nil || !ok || m != (Mark{Life: 1, Epoch: 3, Seq: 52}) {
		t.Fatalf("mark %v %v %v", m, ok, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened: complete the new life, drop the older ones.
	if d, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b = d.Batch(7, 2)
	b.ClearMap("other")
	b.SetMark(Mark{Epoch: 1, Seq: 1, Owner: true})
	b.ClearOlder()
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if m, ok, err := d.NewestMark(7); err != nil || !ok || m != (Mark{Life: 2, Epoch: 1, Seq: 1, Owner: true}) {
		t.Fatalf("mark %v %v %v", m, ok, err)
	}
	if got := collect(t, d, 7, 1, 1<<20); len(got) != 0 {
		t.Fatalf("life 1 kept %v", got)
	}
	if got := collect(t, d, 7, 2, 1<<20); len(got) != 1 || got["m/k00"] != "new" {
		t.Fatalf("life 2: %v", got)
	}
	b = d.Batch(7, 2)
	b.ClearLife()
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := d.NewestMark(7); ok {
		t.Fatal("a cleared copy kept its mark")
	}
	if got := collect(t, d, 8, 1, 1<<20); got["m/k00"] != "elsewhere" {
		t.Fatalf("partition 8: %v", got)
	}
}
