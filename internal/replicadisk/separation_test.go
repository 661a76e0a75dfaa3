package replicadisk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestFolderBeforeValueSeparation opens a folder written with the options of the releases before
// value separation (pebble's default format), and checks that its entries read back, that large
// values written after the upgrade go to blob files and read back byte for byte across a flush,
// compactions and a reopen, and that deleted ones stay deleted.
func TestFolderBeforeValueSeparation(t *testing.T) {
	dir := t.TempDir()
	old, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}, MemTableSize: memTableSize})
	if err != nil {
		t.Fatal(err)
	}
	legacy := &Disk{db: old}
	rng := rand.New(rand.NewPCG(3, 4))
	value := func(n int) []byte {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v
	}
	want := map[string]string{}
	b := legacy.Batch(1, 1)
	for i := range 20 {
		k, v := fmt.Sprintf("old%02d", i), value(8<<10)
		b.Set(Entry{Map: "m", Key: []byte(k), Value: v})
		want["m/"+k] = string(v)
	}
	b.SetMark(Mark{Epoch: 1, Seq: 20})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := legacy.Close(); err != nil {
		t.Fatal(err)
	}

	d, err := Open(dir)
	if err != nil {
		t.Fatalf("a folder of the earlier format does not open: %v", err)
	}
	if got := d.db.FormatMajorVersion(); got < pebble.FormatValueSeparation {
		t.Fatalf("format %v after open, want at least %v", got, pebble.FormatValueSeparation)
	}
	for round := range 8 {
		b := d.Batch(1, 1)
		for i := range 10 {
			k, v := fmt.Sprintf("new%d-%d", round, i), value(separateFrom+rng.IntN(256<<10))
			b.Set(Entry{Map: "m", Key: []byte(k), Value: v})
			want["m/"+k] = string(v)
		}
		gone := fmt.Sprintf("old%02d", round)
		b.Delete("m", []byte(gone))
		delete(want, "m/"+gone)
		b.SetMark(Mark{Epoch: 1, Seq: uint64(21 + round)})
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := d.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.db.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	if blobs := d.db.Metrics().BlobFiles.LiveCount; blobs == 0 {
		t.Fatal("no blob file after writing values above separateFrom: value separation is off")
	}
	check := func(d *Disk) {
		t.Helper()
		got := collect(t, d, 1, 1, 64<<10)
		if len(got) != len(want) {
			t.Fatalf("%d entries, want %d", len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal([]byte(got[k]), []byte(v)) {
				t.Fatalf("%s reads back different (%d bytes, want %d)", k, len(got[k]), len(v))
			}
		}
	}
	check(d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check(d)
}
