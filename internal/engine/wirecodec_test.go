package engine

import (
	"bytes"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// edgeInts are integers at the boundaries of msgpack's integer forms.
var edgeInts = []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
	-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}

// edgeStrings have lengths at the boundaries of msgpack's str and bin forms.
var edgeStrings = []string{"", "m", strings.Repeat("a", 31), strings.Repeat("b", 32), strings.Repeat("c", 255),
	strings.Repeat("d", 256), strings.Repeat("e", 65535), strings.Repeat("f", 65536)}

func edgeBytes() [][]byte {
	out := [][]byte{nil, {}}
	for _, s := range edgeStrings[1:] {
		out = append(out, []byte(s))
	}
	return out
}

// TestAppendersMatchMsgpack: the hand-written encoders write exactly what the msgpack encoder
// writes through EncodeMsgpack, so either decoder reads either.
func TestAppendersMatchMsgpack(t *testing.T) {
	var reqs []opRequest
	var muts []mutation
	for i, n := range edgeInts {
		s := edgeStrings[i%len(edgeStrings)]
		b := edgeBytes()[i%len(edgeBytes())]
		reqs = append(reqs, opRequest{Map: s, Kind: opKind(n), Part: int32(n), Epoch: uint64(n), Key: b, TTL: n,
			Expect: edgeBytes()[(i+1)%len(edgeBytes())], Holder: s, Proc: edgeStrings[(i+2)%len(edgeStrings)], ID: opID{uint64(n), uint64(i)}, Retry: i%2 == 1 && (n != 0 || i != 0),
			StashAt: partition.MemberID(edgeStrings[(i+3)%len(edgeStrings)]), Stash: uint64(n), Timeout: uint64(n) >> (i % 64)})
		muts = append(muts, mutation{Map: s, Kind: mutKind(n), Key: b, ExpireAt: n, Seq: uint64(n), Holder: s,
			Count: int(n), Clean: i%2 == 0, Stash: uint64(n) >> (i % 64), Value: edgeBytes()[(i+3)%len(edgeBytes())],
			Op: opID{uint64(i), uint64(n)}, Ans: answer(n)})
	}
	for _, r := range reqs {
		want, err := msgpack.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := encodeOpRequest(&r)
		got := enc.Header
		if !bytes.Equal(got, want) || len(got) != cap(got) {
			t.Fatalf("request %+v: appender wrote %x (cap %d), msgpack %x", r, got, cap(got), want)
		}
		var back opRequest
		if err := decodeOpRequest(got, &back); err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("request round trip: %+v -> %+v, %v", r, back, err)
		}
	}
	for _, batch := range [][]mutation{nil, muts[:1], muts} {
		for _, part := range []int32{0, -1, math.MaxInt32, math.MinInt32} {
			vlen := make([]int, len(batch))
			for i, m := range batch {
				vlen[i] = len(m.Value)
			}
			want, err := msgpack.Marshal(&batchHeader{Part: part, Epoch: uint64(part), From: "m1", Muts: batch, VLen: vlen})
			if err != nil {
				t.Fatal(err)
			}
			got, body, _ := encodeBatch(part, uint64(part), "m1", batch)
			if !bytes.Equal(got, want) || len(got) != cap(got) {
				t.Fatalf("batch of %d: appender wrote %x, msgpack %x", len(batch), got, want)
			}
			fast, errFast := decodeBatch(got, body)
			slow, errSlow := decodeBatchSlow(got, body)
			if !equalBatches(fast, slow) || (errFast == nil) != (errSlow == nil) {
				t.Fatalf("batch of %d: fast %+v, %v; slow %+v, %v", len(batch), fast, errFast, slow, errSlow)
			}
		}
	}
}

// oldOpHeader turns an operation header as appendTo writes it into the 12-field form of a peer
// from before opRequest.Timeout (whose encoding is the last byte when it is below 128).
func oldOpHeader(h []byte) []byte {
	old := append([]byte{mpFixedArrayLow | 12}, h[1:len(h)-1]...)
	return old
}

// TestOpRequestFromOlderPeer: a request without the Timeout field (a peer from before it)
// decodes, by either decoder, with no timeout.
func TestOpRequestFromOlderPeer(t *testing.T) {
	want := opRequest{Map: "m", Kind: opPut, Part: 3, Epoch: 9, Key: []byte("k"), Holder: "h", Timeout: 5}
	enc, _ := encodeOpRequest(&want)
	old := oldOpHeader(enc.Header)
	want.Timeout = 0
	var fast, slow opRequest
	if !fast.decodeFast(old) || !reflect.DeepEqual(fast, want) {
		t.Fatalf("fast decoder: %+v, want %+v", fast, want)
	}
	if err := decodeOpRequestSlow(old, &slow); err != nil || !reflect.DeepEqual(slow, want) {
		t.Fatalf("msgpack decoder: %+v, %v, want %+v", slow, err, want)
	}
}

func equalBatches(a, b batchHeader) bool {
	a.VLen, b.VLen = nil, nil
	return reflect.DeepEqual(a, b)
}

// FuzzFastDecoders: whatever the fast decoders accept, the msgpack decoders accept with the same
// result, so they only save work.
func FuzzFastDecoders(f *testing.F) {
	req, _ := encodeOpRequest(&opRequest{Map: "m", Kind: opPut, Part: 3, Epoch: 9, Key: []byte("k"), TTL: -5, Holder: "h", Proc: "p", ID: opID{1, 2}, Retry: true})
	f.Add(req.Header, []byte(nil))
	req, _ = encodeOpRequest(&opRequest{Map: "m", Kind: opGet, Part: 1, Key: []byte("k"), Timeout: 300_000})
	f.Add(req.Header, []byte(nil))
	f.Add(oldOpHeader(req.Header), []byte(nil))
	h, body, _ := encodeBatch(3, 7, "m1", []mutation{{Map: "m", Kind: mutSet, Key: []byte("k"), Value: []byte("v"), Seq: 1, Op: opID{3, 4}, Ans: 1},
		{Map: "m", Kind: mutLock, Key: []byte{}, Holder: "x/1", Count: 2, ExpireAt: -1, Seq: 300}})
	f.Add(h, body)
	f.Fuzz(func(t *testing.T, header, body []byte) {
		var fast opRequest
		if fast.decodeFast(header) {
			var slow opRequest
			if err := msgpack.Unmarshal(header, &slow); err != nil || !reflect.DeepEqual(fast, slow) {
				t.Fatalf("request: fast %+v, slow %+v (%v)", fast, slow, err)
			}
		}
		var fb batchHeader
		if ok, errFast := fb.decodeFast(header, body); ok {
			slow, errSlow := decodeBatchSlow(header, body)
			if (errFast == nil) != (errSlow == nil) || (errFast == nil && !equalBatches(fb, slow)) {
				t.Fatalf("batch: fast %+v, %v; slow %+v, %v", fb, errFast, slow, errSlow)
			}
		}
	})
}

// TestCompactResponse: the answers of single-key operations round-trip in the compact form,
// without a heap-allocated header when they carry no version.
func TestCompactResponse(t *testing.T) {
	for _, resp := range []opResponse{
		{}, {Done: true}, {Status: statusNotFound}, {Status: statusDirtyLimit, Done: true},
		{Done: true, Value: []byte("v"), Version: 1}, {Done: true, Value: []byte("v"), Version: math.MaxUint64},
		{Status: maxCompactStatus - 1, Done: true, Version: 300},
	} {
		msg, err := encodeResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header[0] >= 2*maxCompactStatus {
			t.Fatalf("%+v: not compact: %x", resp, msg.Header)
		}
		back, err := decodeResponse(transport.Message{Header: bytes.Clone(msg.Header), Body: msg.Body})
		if err != nil || !reflect.DeepEqual(back, resp) && !(len(resp.Value) == 0 && len(back.Value) == 0) {
			t.Fatalf("%+v -> %x -> %+v, %v", resp, msg.Header, back, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = encodeResponse(opResponse{Done: true}) }); n != 0 {
		t.Fatalf("one-byte answer allocates %v times", n)
	}
	for _, bad := range [][]byte{{0x01, 0x80}, {0x01, 0x00}, {0x01, 0x01, 0x01}, {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := decodeResponse(transport.Message{Header: bad}); err == nil {
			t.Fatalf("compact header %x accepted", bad)
		}
	}
	// Everything else still travels as msgpack.
	for _, resp := range []opResponse{{Epoch: 3}, {Msg: "m"}, {Count: 2}, {Status: maxCompactStatus}} {
		msg, _ := encodeResponse(resp)
		back, err := decodeResponse(msg)
		if err != nil || !reflect.DeepEqual(back, resp) {
			t.Fatalf("%+v -> %+v, %v", resp, back, err)
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
