package queue

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func mustItems(t *testing.T, b []byte, err error) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	items, err := decodeItems(b)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, string(it))
	}
	return out
}

func TestLayoutScript(t *testing.T) {
	v := mapView{}
	steps := []struct {
		do   string
		arg  string
		want string
	}{
		{"offer", "a", "accepted"},
		{"offer", "b", "accepted"},
		{"offer", "c", "full"}, // capacity 2
		{"size", "", "2"},
		{"peek", "", "[a]"},
		{"poll", "", "[a]"},
		{"offer", "c", "accepted"},
		{"poll", "", "[b]"},
		{"poll", "", "[c]"},
		{"poll", "", "[]"},
		{"size", "", "0"},
		{"peek", "", "[]"},
	}
	for i, s := range steps {
		var got string
		switch s.do {
		case "offer":
			res, err := offer(v, 2, [][]byte{[]byte(s.arg)})
			if err != nil {
				t.Fatal(err)
			}
			got = map[byte]string{offerAccepted: "accepted", offerFull: "full"}[res[0]]
		case "size":
			res, err := size(v)
			n, _ := uvarints(res, 1)
			if err != nil {
				t.Fatal(err)
			}
			got = fmt.Sprint(n[0])
			if c := itemCount(len(v)); uint64(c) != n[0] {
				t.Fatalf("step %d: %d entries count as %d items (Figures), size says %d", i, len(v), c, n[0])
			}
		case "peek":
			res, err := peek(v)
			got = fmt.Sprint(mustItems(t, res, err))
		case "poll":
			res, err := poll(v, 1, 1<<20)
			got = fmt.Sprint(mustItems(t, res, err))
		}
		if got != s.want {
			t.Fatalf("step %d %s %q: %s, want %s", i, s.do, s.arg, got, s.want)
		}
	}
	if len(v) != 1 {
		t.Fatalf("an empty queue keeps %d entries, want only its head and tail: %q", len(v), v)
	}
}

func TestPollBoundsAndSkipsMissing(t *testing.T) {
	v := mapView{}
	for i := range 10 {
		if _, err := offer(v, 0, [][]byte{fmt.Appendf(nil, "item%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	delete(v, string(itemKey(1))) // a store that lost an item
	res, err := poll(v, 3, 1<<20)
	if got := mustItems(t, res, err); !slices.Equal(got, []string{"item0", "item2", "item3"}) {
		t.Fatalf("poll 3 = %q", got)
	}
	// The byte bound stops before an item that would pass it, but takes at least one.
	res, err = poll(v, 10, 1)
	if got := mustItems(t, res, err); !slices.Equal(got, []string{"item4"}) {
		t.Fatalf("poll within 1 byte = %q", got)
	}
	res, err = poll(v, 10, 11)
	if got := mustItems(t, res, err); !slices.Equal(got, []string{"item5", "item6"}) {
		t.Fatalf("poll within 11 bytes = %q", got)
	}
}

// Items a taker gave up on go back before the head, in their order, ahead of the items still
// queued; the queue may exceed its capacity by them.
func TestUnpollPutsItemsBackAtTheHead(t *testing.T) {
	v := mapView{}
	for _, it := range []string{"a", "b", "c", "d"} {
		if _, err := offer(v, 4, [][]byte{[]byte(it)}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := poll(v, 2, 1<<20)
	if got := mustItems(t, res, err); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("poll 2 = %q", got)
	}
	if res, err := offer(v, 4, [][]byte{[]byte("e"), []byte("f")}); err != nil || res[0] != offerAccepted {
		t.Fatalf("offer = %v, %v", res, err)
	}
	if res, err := unpoll(v, [][]byte{[]byte("a"), []byte("b")}); err != nil || !slices.Equal(res, []byte{unpolled}) {
		t.Fatalf("unpoll = %v, %v", res, err)
	}
	res, _ = size(v)
	if n, _ := uvarints(res, 1); n[0] != 6 {
		t.Fatalf("size after unpoll = %d, want 6 (over the capacity of 4)", n[0])
	}
	res, err = poll(v, 10, 1<<20)
	if got := mustItems(t, res, err); !slices.Equal(got, []string{"a", "b", "c", "d", "e", "f"}) {
		t.Fatalf("poll all = %q", got)
	}
	// More items than ever left the head: refused, nothing changed.
	if _, err := unpoll(v, make([][]byte, 7)); !errors.Is(err, errCorrupt) {
		t.Fatalf("unpoll beyond the first item = %v, want errCorrupt", err)
	}
	if res, _ := size(v); res[0] != 0 {
		t.Fatalf("a refused unpoll changed the size to %d", res[0])
	}
}

func TestClearChunksUpToTheTailAtStart(t *testing.T) {
	v := mapView{}
	for i := range 10 {
		offer(v, 0, [][]byte{fmt.Appendf(nil, "%d", i)})
	}
	res, _ := clearChunk(v, 0, 4)
	n, _ := uvarints(res, 2)
	if n[0] != 4 || n[1] != 10 {
		t.Fatalf("first chunk: head %d, bound %d", n[0], n[1])
	}
	offer(v, 0, [][]byte{[]byte("late")})
	for n[0] < n[1] {
		res, _ = clearChunk(v, n[1], 4)
		n, _ = uvarints(res, 2)
	}
	res, err := poll(v, 10, 1<<20)
	if got := mustItems(t, res, err); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("after Clear: %q, want the item offered during it", got)
	}
}

func TestCorruptMetaIsRefused(t *testing.T) {
	v := mapView{string(metaKey): []byte("short")}
	if _, err := offer(v, 0, [][]byte{[]byte("x")}); !errors.Is(err, errCorrupt) {
		t.Fatalf("offer on a corrupt queue: %v", err)
	}
}

// FuzzDecodeItems: the item list a processor returns (or receives) never crashes its reader.
func FuzzDecodeItems(f *testing.F) {
	f.Add(encodeItems(nil))
	f.Add(encodeItems([][]byte{[]byte("a"), {}, []byte("ccc")}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{2, 5, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := decodeItems(b)
		if err != nil {
			return
		}
		if again := encodeItems(items); string(again) != string(b) && len(items) > 0 {
			// Non-minimal varints decode too; re-decoding the re-encoding must agree.
			back, err := decodeItems(again)
			if err != nil || len(back) != len(items) {
				t.Fatalf("re-encoding of %d items does not decode: %v", len(items), err)
			}
		}
	})
}
