package dmap

import (
	"errors"
	"testing"
)

type report struct {
	ID      string
	Product string
	Size    int
}

func TestCodecs(t *testing.T) {
	b := DefaultCodec[[]byte]()
	in := []byte("raw")
	enc, _ := b.Encode(in)
	in[0] = 'X'
	if string(enc) != "raw" {
		t.Fatal("[]byte codec aliases the caller's slice")
	}
	s := DefaultCodec[string]()
	if enc, _ := s.Encode("abc"); string(enc) != "abc" {
		t.Fatal("string codec re-encodes")
	}
	r := DefaultCodec[report]()
	enc, err := r.Encode(report{ID: "1", Product: "Firefox", Size: 42})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Decode(enc)
	if err != nil || got != (report{ID: "1", Product: "Firefox", Size: 42}) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	if _, err := r.Decode([]byte{0xc1}); !errors.Is(err, ErrCodec) {
		t.Fatalf("garbage decode = %v, want ErrCodec", err)
	}
}

func BenchmarkCodecStruct(b *testing.B) {
	c := DefaultCodec[report]()
	v := report{ID: "bp-1234", Product: "Firefox", Size: 4 << 20}
	b.ReportAllocs()
	for b.Loop() {
		enc, _ := c.Encode(v)
		if _, err := c.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
