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

func FuzzDecodeBatch(f *testing.F) {
	h, body, _ := encodeBatch(3, 7, "m1", []mutation{{Map: "m", Kind: mutSet, Key: []byte("k"), Value: []byte("v"), Seq: 1}})
	f.Add(h, body)
	f.Add([]byte{0x80}, []byte{})
	f.Fuzz(func(t *testing.T, header, body []byte) {
		bh, err := decodeBatch(header, body)
		if err != nil {
			return
		}
		for _, m := range bh.Muts {
			if m.Kind != mutSet && m.Kind != mutDelete && m.Kind != mutClear {
				t.Fatalf("accepted kind %d", m.Kind)
			}
		}
	})
}
