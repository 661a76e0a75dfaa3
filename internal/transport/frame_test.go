package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func rawFrame(length uint32, kind Kind, typ MsgType, id uint64, hlen uint32, rest []byte) []byte {
	b := make([]byte, PrefixSize, PrefixSize+len(rest))
	binary.BigEndian.PutUint32(b, length)
	b[4], b[5] = byte(kind), byte(typ)
	binary.BigEndian.PutUint64(b[6:], id)
	binary.BigEndian.PutUint32(b[14:], hlen)
	return append(b, rest...)
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []Frame{
		{Kind: KindRequest, Type: 1, ID: 1},
		{Kind: KindResponse, Type: 255, ID: 1<<64 - 1, Header: []byte("h"), Body: []byte("body")},
		{Kind: KindError, Type: 7, ID: 42, Body: bytes.Repeat([]byte("x"), 100000)},
		{Kind: KindRequest, Type: 3, ID: 9, Header: bytes.Repeat([]byte("y"), 70000)},
	}
	var stream []byte
	for _, f := range frames {
		stream = AppendFrame(stream, f)
	}
	var viaWrite bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&viaWrite, f); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(stream, viaWrite.Bytes()) {
		t.Fatal("AppendFrame and WriteFrame differ")
	}
	r := bufio.NewReader(bytes.NewReader(stream))
	for i, want := range frames {
		got, err := ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Kind != want.Kind || got.Type != want.Type || got.ID != want.ID ||
			!bytes.Equal(got.Header, want.Header) || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("frame %d: got %+v", i, got)
		}
	}
	if _, err := ReadFrame(r, 1<<20); err != io.EOF {
		t.Fatalf("at end: got %v, want io.EOF", err)
	}
}

func TestReadFrameRefusals(t *testing.T) {
	good := AppendFrame(nil, Frame{Kind: KindRequest, Type: 5, ID: 77, Header: []byte("ok")})
	tests := []struct {
		name    string
		in      []byte
		want    error
		hasID   bool
		resync  bool
		wantErr error // for non-FrameError errors
	}{
		{name: "oversized", in: rawFrame(1<<30, KindRequest, 5, 77, 0, nil), want: ErrFrameTooLarge, hasID: true},
		{name: "too short", in: rawFrame(3, KindRequest, 5, 77, 0, nil), want: ErrMalformedFrame},
		{name: "header beyond frame", in: rawFrame(MinFrameLength+4, KindRequest, 5, 77, 5, []byte("abcd")), want: ErrMalformedFrame, hasID: true, resync: true},
		{name: "bad kind", in: rawFrame(MinFrameLength+1, 9, 5, 77, 0, []byte("a")), want: ErrMalformedFrame, hasID: true, resync: true},
		{name: "truncated prefix", in: good[:10], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated body", in: good[:len(good)-1], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated length", in: good[:2], wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]byte(nil), tt.in...)
			if tt.wantErr == nil {
				in = append(in, good...)
			}
			r := bufio.NewReader(bytes.NewReader(in))
			_, err := ReadFrame(r, 1<<20)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			var fe *FrameError
			if !errors.As(err, &fe) || !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if fe.HasID != tt.hasID || fe.Resync != tt.resync {
				t.Fatalf("HasID %v Resync %v, want %v %v", fe.HasID, fe.Resync, tt.hasID, tt.resync)
			}
			if fe.HasID && (fe.ID != 77 || fe.Type != 5) {
				t.Fatalf("id %d type %d", fe.ID, fe.Type)
			}
			if fe.Resync {
				f, err := ReadFrame(r, 1<<20)
				if err != nil || f.ID != 77 || string(f.Header) != "ok" {
					t.Fatalf("after resync: %+v %v", f, err)
				}
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Frame{Kind: KindRequest, Type: 1, ID: 1, Header: []byte("h"), Body: []byte("b")}), uint8(1), []byte("hdr"), []byte("body"))
	f.Add(AppendFrame(AppendFrame(nil, Frame{Kind: KindError, Type: 2, ID: 3, Body: []byte{0, 4, 'x'}}), Frame{Kind: KindResponse}), uint8(0), []byte{}, []byte{})
	f.Add(rawFrame(1<<31, KindRequest, 5, 77, 0, nil), uint8(2), []byte("x"), []byte(nil))
	f.Add(rawFrame(MinFrameLength+4, KindRequest, 5, 77, 5, []byte("abcd")), uint8(3), []byte(nil), []byte("y"))
	f.Add(rawFrame(2, KindRequest, 5, 77, 0, nil), uint8(9), []byte(nil), []byte(nil))
	f.Add([]byte{0, 0, 0}, uint8(1), []byte(nil), []byte(nil))
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte, kind uint8, header, body []byte) {
		// Arbitrary input: never panics; every frame read re-encodes to the
		// exact bytes it was read from.
		src := bytes.NewReader(data)
		r := bufio.NewReader(src)
		off := 0
		for {
			fr, err := ReadFrame(r, max)
			consumed := len(data) - src.Len() - r.Buffered()
			if err != nil {
				var fe *FrameError
				if errors.As(err, &fe) && fe.Resync {
					off = consumed
					continue
				}
				break
			}
			enc := AppendFrame(nil, fr)
			if fr.Length() > max || !bytes.Equal(enc, data[off:consumed]) {
				t.Fatalf("re-encoding differs: %x vs %x", enc, data[off:consumed])
			}
			off = consumed
		}
		// Valid frames round-trip.
		want := Frame{Kind: Kind(kind % 3), Type: MsgType(kind), ID: uint64(len(data)) * 7919, Header: header, Body: body}
		enc := AppendFrame(nil, want)
		got, err := ReadFrame(bufio.NewReader(bytes.NewReader(enc)), max+PrefixSize)
		if want.Length() > max+PrefixSize {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != want.Kind || got.Type != want.Type || got.ID != want.ID ||
			!bytes.Equal(got.Header, want.Header) || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("round trip: got %+v want %+v", got, want)
		}
	})
}
