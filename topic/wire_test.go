package topic

import (
	"bytes"
	"errors"
	"testing"
)

func TestReadResultRoundTrip(t *testing.T) {
	r := readResult{next: 10, oldest: 4, first: 6, msgs: [][]byte{[]byte("a"), {}, []byte("ccc")}}
	got, err := decodeReadResult(r.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.next != 10 || got.oldest != 4 || got.first != 6 || len(got.msgs) != 3 || !bytes.Equal(got.msgs[2], []byte("ccc")) || len(got.msgs[1]) != 0 {
		t.Fatalf("round trip: %+v", got)
	}
	for _, bad := range []readResult{
		{next: 3, oldest: 4}, // oldest beyond next
		{next: 5, oldest: 1, first: 4, msgs: [][]byte{{1}, {2}}}, // more messages than the ring holds
	} {
		if _, err := decodeReadResult(bad.encode()); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%+v decoded: %v", bad, err)
		}
	}
}

func TestPublishArgRoundTrip(t *testing.T) {
	c, p, err := decodePublishArg(encodePublishArg(300, []byte("hello"), nil, []byte("x")))
	if err != nil || c != 300 || len(p) != 3 || string(p[0]) != "hello" || len(p[1]) != 0 || string(p[2]) != "x" {
		t.Fatalf("%d %q %v", c, p, err)
	}
	for _, bad := range [][]byte{
		encodePublishArg(MaxRingCapacity+1, nil),    // a ring beyond the maximum
		encodePublishArg(5),                         // no message
		append(encodePublishArg(5, []byte("a")), 0), // trailing byte
		{5, 1, 9, 'a'},                              // a message longer than the argument
	} {
		if _, _, err := decodePublishArg(bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%v decoded: %v", bad, err)
		}
	}
	if _, err := decodeReadArg([]byte{1, 2}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("short read argument: %v", err)
	}
}

// The decoders read what another member sent: whatever the bytes, they return an error or a
// result whose messages lie within them, and never panic.
func FuzzDecodeReadResult(f *testing.F) {
	f.Add(readResult{next: 10, oldest: 4, first: 6, msgs: [][]byte{[]byte("a"), {}, []byte("ccc")}}.encode())
	f.Add(readResult{next: 1, oldest: 1, first: 1}.encode())
	f.Add(readResult{next: 1, oldest: 1, first: 9}.encode())
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Add(encodePublishArg(7, []byte("a"), []byte("bc")))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReadResult(b)
		if err != nil {
			return
		}
		if r.oldest > r.next || r.first < r.oldest {
			t.Fatalf("accepted bounds %+v", r)
		}
		if again, err := decodeReadResult(r.encode()); err != nil || len(again.msgs) != len(r.msgs) {
			t.Fatalf("re-encoding an accepted result: %v", err)
		}
		decodeReadArg(b)
		decodePublishArg(b)
	})
}
