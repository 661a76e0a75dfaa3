package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/internal/writebehind"
	"github.com/gridmap/gridmap/listener"
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

// TestAppendersRoundTrip: what the appenders write is a msgpack array of the message's fields
// (any msgpack decoder reads it), in one right-sized allocation, and their readers give back
// what was written, at every boundary of msgpack's integer, str and bin forms.
func TestAppendersRoundTrip(t *testing.T) {
	var reqs []opRequest
	var muts []mutation
	for i, n := range edgeInts {
		s := edgeStrings[i%len(edgeStrings)]
		b := edgeBytes()[i%len(edgeBytes())]
		reqs = append(reqs, opRequest{Map: s, Kind: opKind(n), Part: int32(n), Epoch: uint64(n), Key: b, TTL: n,
			Expect: edgeBytes()[(i+1)%len(edgeBytes())], Holder: s, Proc: edgeStrings[(i+2)%len(edgeStrings)], ID: opID{uint64(n), uint64(i)}, Retry: i%2 == 1 && (n != 0 || i != 0),
			StashAt: partition.MemberID(edgeStrings[(i+3)%len(edgeStrings)]), Stash: uint64(n), Timeout: uint64(n) >> (i % 64)})
		if r := &reqs[len(reqs)-1]; r.Retry {
			r.Age = time.Duration(uint64(n) % uint64(maxRetryAge+1))
			if i%4 == 3 {
				r.Age = ageUnknown // a peer from before ages
			}
		}
		muts = append(muts, mutation{Map: s, Kind: mutSet + mutKind(i%int(mutAnswer)), Key: b, ExpireAt: n, Seq: uint64(n), Holder: s,
			Count: int(n), Clean: i%2 == 0, Stash: uint64(n) >> (i % 64), Value: edgeBytes()[(i+3)%len(edgeBytes())],
			Op: opID{uint64(i), uint64(n)}, Ans: answer(n)})
	}
	for _, r := range reqs {
		enc, _ := encodeOpRequest(&r)
		got := enc.Header
		if len(got) != cap(got) {
			t.Fatalf("request %+v: header cap %d for %d bytes", r, cap(got), len(got))
		}
		var fields []any
		if err := msgpack.Unmarshal(got, &fields); err != nil || len(fields) != 13 {
			t.Fatalf("request header is not a msgpack array of 13 fields: %v, %v", fields, err)
		}
		var back opRequest
		if err := decodeOpRequest(got, &back); err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("request round trip: %+v -> %+v, %v", r, back, err)
		}
	}
	for _, batch := range [][]mutation{nil, muts[:1], muts} {
		for _, part := range []int32{0, -1, math.MaxInt32, math.MinInt32} {
			got, body, _ := encodeBatch(part, uint64(part), "m1", batch)
			if len(got) != cap(got) {
				t.Fatalf("batch of %d: header cap %d for %d bytes", len(batch), cap(got), len(got))
			}
			var fields []any
			if err := msgpack.Unmarshal(got, &fields); err != nil || len(fields) != 5 {
				t.Fatalf("batch header is not a msgpack array of 5 fields: %v", err)
			}
			back, err := decodeBatch(got, body)
			if err != nil || back.Part != part || back.Epoch != uint64(part) || back.From != "m1" || !equalMutations(back.Muts, batch) {
				t.Fatalf("batch of %d: round trip %+v, %v", len(batch), back, err)
			}
		}
	}
}

// equalMutations compares mutations, an empty value equal to a nil one (values travel in the
// body, which does not tell them apart).
func equalMutations(a, b []mutation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !bytes.Equal(x.Value, y.Value) {
			return false
		}
		x.Value, y.Value = nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// oldOpHeader turns an operation header as appendTo writes it into the 12-field form of a peer
// from before opRequest.Timeout (whose encoding is the last byte when it is below 128).
func oldOpHeader(h []byte) []byte {
	old := append([]byte{mpFixedArrayLow | 12}, h[1:len(h)-1]...)
	return old
}

// TestOpRequestFromOlderPeer: a request without the Timeout field (a peer from before it)
// decodes with no timeout.
func TestOpRequestFromOlderPeer(t *testing.T) {
	want := opRequest{Map: "m", Kind: opPut, Part: 3, Epoch: 9, Key: []byte("k"), Holder: "h", Timeout: 5}
	enc, _ := encodeOpRequest(&want)
	old := oldOpHeader(enc.Header)
	want.Timeout = 0
	var got opRequest
	if err := decodeOpRequest(old, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, want)
	}
}

// TestRetryAgeOnTheWire: a retry carries its age after the operation ID; a retry from a peer
// before ages (the mark alone) decodes with ageUnknown and encodes back the same; malformed
// marks and ages beyond maxRetryAge are refused, and a mutation never carries a retry.
func TestRetryAgeOnTheWire(t *testing.T) {
	id := opID{0x0102030405060708, 0x1112131415161718}
	for _, tc := range []struct {
		retry bool
		age   time.Duration
		size  int
	}{{false, 0, 18}, {true, ageUnknown, 19}, {true, 0, 27}, {true, 90 * time.Second, 27}, {true, maxRetryAge, 27}} {
		b := appendOpID(nil, id, tc.retry, tc.age)
		if len(b) != tc.size || sizeOpID(id, tc.retry, tc.age) != tc.size {
			t.Fatalf("%+v: %d bytes (size %d), want %d", tc, len(b), sizeOpID(id, tc.retry, tc.age), tc.size)
		}
		gotID, retry, age, ok := parseOpID(b[2:])
		if !ok || gotID != id || retry != tc.retry || age != tc.age {
			t.Fatalf("%+v: parsed %v %v %v %v", tc, gotID, retry, age, ok)
		}
		if again := appendOpID(nil, gotID, retry, age); !bytes.Equal(again, b) {
			t.Fatalf("%+v: re-encoded %x, want %x", tc, again, b)
		}
	}
	bad := [][]byte{
		append(appendOpID(nil, id, true, ageUnknown)[2:len(appendOpID(nil, id, true, ageUnknown))-1], 2),     // age mark, no age
		append(appendOpID(nil, id, false, 0)[2:], 7),                                                         // unknown mark
		append(appendOpID(nil, id, true, time.Second)[2:], 0),                                                // trailing byte
		binary.BigEndian.AppendUint64(append(appendOpID(nil, id, false, 0)[2:], retryMarkAge), 1<<63),        // negative age
		binary.BigEndian.AppendUint64(append(appendOpID(nil, opID{}, false, 0), make([]byte, 16)...), 0)[1:], // zero ID
	}
	bad = append(bad, binary.BigEndian.AppendUint64(append(appendOpID(nil, id, false, 0)[2:], retryMarkAge), uint64(maxRetryAge)+1))
	for _, b := range bad {
		if _, _, _, ok := parseOpID(b); ok {
			t.Fatalf("accepted %x", b)
		}
	}
	// A mutation's ID never carries a retry mark.
	m := mutation{Map: "m", Kind: mutSet, Key: []byte("k"), Seq: 1, Op: id}
	h, body, _ := encodeBatch(1, 1, "m1", []mutation{m})
	withRetry := bytes.Replace(h, appendOpID(nil, id, false, 0), appendOpID(nil, id, true, ageUnknown), 1)
	if bytes.Equal(withRetry, h) {
		t.Fatal("the test did not find the mutation's ID")
	}
	if _, err := decodeBatch(withRetry, body); err == nil {
		t.Fatal("a mutation with a retry mark was accepted")
	}
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
	// Everything else travels in the long form.
	for _, resp := range []opResponse{{Epoch: 3}, {Msg: "m"}, {Count: 2}, {Status: maxCompactStatus},
		{Entries: []kv{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte{}}}, Version: 7, Epoch: 9}} {
		msg, _ := encodeResponse(resp)
		var fields []any
		if err := msgpack.Unmarshal(msg.Header, &fields); err != nil || len(fields) != 8 {
			t.Fatalf("%+v: long header is not a msgpack array of 8 fields: %v", resp, err)
		}
		back, err := decodeResponse(msg)
		if err != nil || !equalResponses(back, resp) {
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
	for _, age := range []time.Duration{0, 1500 * time.Millisecond, maxRetryAge, ageUnknown} {
		retry, _ := encodeOpRequest(&opRequest{Map: "m", Kind: opExecutePartition, Part: 3, Epoch: 9, Proc: "p", ID: opID{1, 2}, Retry: true, Age: age})
		f.Add(retry.Header)
	}
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
		if err := decodeOpRequest(again.Header, &back); err != nil || back.Map != req.Map || back.Part != req.Part || back.Epoch != req.Epoch ||
			back.ID != req.ID || back.Retry != req.Retry || back.Age != req.Age {
			t.Fatalf("round trip: %+v -> %+v (%v)", req, back, err)
		}
	})
}

// FuzzDecodeResponse: answers from other members are decoded without trusting their lengths.
func FuzzDecodeResponse(f *testing.F) {
	m, _ := encodeResponse(opResponse{Entries: []kv{{Key: []byte("a"), Value: []byte("1")}}})
	f.Add(m.Header, m.Body)
	f.Add([]byte{2}, []byte("v"))
	m, _ = encodeResponse(opResponse{Status: statusConflict, Msg: "changed", Epoch: 4})
	f.Add(m.Header, m.Body)
	m, _ = encodeResponse(opResponse{Done: true, Version: 9})
	f.Add(m.Header, m.Body)
	f.Fuzz(func(t *testing.T, header, body []byte) {
		resp, err := decodeResponse(transport.Message{Header: header, Body: body})
		if err != nil {
			return
		}
		again, err := encodeResponse(resp)
		if err != nil {
			t.Fatalf("accepted response does not re-encode: %v", err)
		}
		back, err := decodeResponse(again)
		if err != nil || !equalResponses(back, resp) {
			t.Fatalf("round trip: %+v -> %+v (%v)", resp, back, err)
		}
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

// equalResponses compares responses as they travel (an empty value equal to a nil one).
func equalResponses(a, b opResponse) bool {
	if !bytes.Equal(a.Value, b.Value) || len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		if !bytes.Equal(a.Entries[i].Key, b.Entries[i].Key) || !bytes.Equal(a.Entries[i].Value, b.Entries[i].Value) {
			return false
		}
	}
	a.Value, b.Value, a.Entries, b.Entries, a.owned, b.owned = nil, nil, nil, nil, false, false
	return reflect.DeepEqual(a, b)
}

// fuzzMsg fuzzes the reader of a msgpack-struct message: it must refuse garbage without
// panicking, and what it accepts must encode and decode again to the same message.
func fuzzMsg[M any](f *testing.F, encode func(*M) ([]byte, error), decode func([]byte) (M, error), seeds ...M) {
	for _, s := range seeds {
		b, err := encode(&s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x80})
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refused with %v, not ErrBadRequest", err)
			}
			return
		}
		again, err := encode(&m)
		if err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		back, err := decode(again)
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip: %+v -> %+v (%v)", m, back, err)
		}
	})
}

func FuzzDecodeQueueChunk(f *testing.F) {
	fuzzMsg(f, encodeQueueChunk, decodeQueueChunk,
		queueChunk{Part: 3, Epoch: 9, Map: "wb", Snap: writebehind.Snapshot{LastSeq: 7, Entries: []writebehind.SnapshotEntry{
			{Entry: writebehind.Entry{Key: []byte("k"), Value: []byte("v"), Seq: 7}, Since: 5, Age: time.Second},
			{Entry: writebehind.Entry{Key: []byte("d"), Delete: true, Seq: 6}}}}})
}

func FuzzDecodeLoadRequest(f *testing.F) {
	fuzzMsg(f, encodeLoadRequest, decodeLoadRequest,
		loadRequest{Map: "m", Epoch: 4, Parts: map[int32][][]byte{1: {[]byte("a"), []byte("b")}, 30: {[]byte("c")}}})
}

func FuzzDecodeRegs(f *testing.F) {
	fuzzMsg(f, encodeRegs, decodeRegs,
		regsMsg{From: "m1", Version: 3, Regs: []regSpec{{ID: "m1/ab", Map: "m", HasKey: true, Key: []byte("k"), Pred: "p", Arg: []byte{1}, Values: true}, {ID: "m1/cd", Map: "n"}}})
}

func FuzzDecodeEvents(f *testing.F) {
	fuzzMsg(f, encodeEvents, decodeEvents,
		eventsMsg{From: "m2", Events: []wireEvent{{Reg: "m1/ab", Kind: listener.Updated, Key: []byte("k"), Part: 3, Member: "m2", Seq: 9, Old: []byte("a"), New: []byte("b"), Missed: 2},
			{Reg: "m1/ab", Kind: listener.Overflow, Part: -1, Missed: 5}}})
}

func FuzzDecodeTxCommit(f *testing.F) {
	fuzzMsg(f, encodeTxCommit, decodeTxCommit,
		txCommit{Reads: []txRead{{Map: "a", Key: []byte("k"), Version: 3}}, Writes: []txWrite{{Map: "a", Key: []byte("k"), Value: []byte("v"), TTL: 5}, {Map: "b", Key: []byte("k"), Delete: true}}})
}
