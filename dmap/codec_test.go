package dmap

import (
	"errors"
	"runtime"
	"testing"

	"github.com/gridmap/gridmap/internal/transport"
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
			if !m.Kind.valid() {
				t.Fatalf("accepted kind %d", m.Kind)
			}
		}
	})
}

// FuzzDecodeOpRequest feeds arbitrary headers to the operation decoder used for every request
// from another member: it must refuse garbage without panicking, and round-trip what it accepts.
func FuzzDecodeOpRequest(f *testing.F) {
	good, _ := encodeOpRequest(&opRequest{Map: "m", Kind: opPut, Part: 3, Epoch: 9, Key: []byte("k"), TTL: 5, Holder: "h", Proc: "p", ID: opID{1, 2}})
	f.Add(good.Header)
	f.Add([]byte{0x9a})
	f.Add([]byte{0xc1})
	f.Fuzz(func(t *testing.T, header []byte) {
		var req opRequest
		if err := decodeOpRequest(header, &req); err != nil {
			return
		}
		again, err := encodeOpRequest(&req)
		if err != nil {
			t.Fatalf("accepted request does not re-encode: %v", err)
		}
		var back opRequest
		if err := decodeOpRequest(again.Header, &back); err != nil || back.Map != req.Map || back.Part != req.Part || back.Epoch != req.Epoch {
			t.Fatalf("round trip: %+v -> %+v (%v)", req, back, err)
		}
	})
}

// FuzzDecodeResponse: answers from other members are decoded without trusting their lengths.
func FuzzDecodeResponse(f *testing.F) {
	m, _ := encodeResponse(opResponse{Entries: []kv{{Key: []byte("a"), Value: []byte("1")}}})
	f.Add(m.Header, m.Body)
	f.Add([]byte{2}, []byte("v"))
	f.Fuzz(func(t *testing.T, header, body []byte) {
		_, _ = decodeResponse(transport.Message{Header: header, Body: body})
	})
}

// A header whose length prefix declares far more than it holds is refused without allocating
// what it declares (the msgpack decoder used to allocate gigabytes for a 30-byte header).
func TestDecodeRefusesOversizedLengths(t *testing.T) {
	headers := [][]byte{
		[]byte("\x9500\xa200\x91\x98\xa100\xc6\xff\xff\xff\x7f"),
		{0x95, 0x01, 0x01, 0xa1, 'm', 0xdd, 0x7f, 0xff, 0xff, 0xff},
	}
	for _, h := range headers {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, errBatch := decodeBatch(h, []byte("x"))
		var req opRequest
		errReq := decodeOpRequest(h, &req)
		_, errResp := decodeResponse(transport.Message{Header: h})
		runtime.ReadMemStats(&after)
		if errBatch == nil || errReq == nil || errResp == nil {
			t.Errorf("% x accepted: batch %v, request %v, response %v", h, errBatch, errReq, errResp)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("% x: decoding allocated %d bytes", h, grew)
		}
	}
}
