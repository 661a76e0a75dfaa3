package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Operations on the wire (msgOp): the request header and the owner's response.

// encodeOpRequest is shared by the single-key and per-partition call paths.
func encodeOpRequest(req *opRequest) (transport.Message, error) {
	h := req.appendTo(make([]byte, 0, req.encodedSize()))
	return transport.Message{Type: msgOp, Header: h, Body: req.Value}, nil
}

func (r *opRequest) encodedSize() int {
	return sizeArrayLen(13) + sizeStr(r.Map) + sizeUint(uint64(r.Kind)) + sizeInt(int64(r.Part)) +
		sizeUint(r.Epoch) + sizeBin(r.Key) + sizeInt(r.TTL) + sizeBin(r.Expect) + sizeStr(r.Holder) +
		sizeStr(r.Proc) + sizeOpID(r.ID, r.Retry, r.Age) + sizeStr(string(r.StashAt)) + sizeUint(r.Stash) + sizeUint(r.Timeout)
}

// appendTo appends the request header: a msgpack array of its 13 fields.
func (r *opRequest) appendTo(b []byte) []byte {
	b = appendArrayLen(b, 13)
	b = appendStr(b, r.Map)
	b = appendUint(b, uint64(r.Kind))
	b = appendInt(b, int64(r.Part))
	b = appendUint(b, r.Epoch)
	b = appendBin(b, r.Key)
	b = appendInt(b, r.TTL)
	b = appendBin(b, r.Expect)
	b = appendStr(b, r.Holder)
	b = appendStr(b, r.Proc)
	b = appendOpID(b, r.ID, r.Retry, r.Age)
	b = appendStr(b, string(r.StashAt))
	b = appendUint(b, r.Stash)
	return appendUint(b, r.Timeout)
}

// decodeFast decodes what appendTo wrote (or a peer from before Timeout, without it); byte
// fields alias header. It reports false when the header is not in that exact form.
func (req *opRequest) decodeFast(header []byte) bool {
	r := wireReader{b: header}
	var ok [13]bool
	var n int
	var kind uint64
	var part int64
	var stashAt string
	var id []byte
	n, ok[0] = r.arrayLen()
	if !ok[0] || (n != 13 && n != 12) { // 12: a peer from before Timeout
		return false
	}
	req.Map, ok[0] = r.name()
	kind, ok[1] = r.uint()
	part, ok[2] = r.int()
	req.Epoch, ok[3] = r.uint()
	req.Key, ok[4] = r.bytes()
	req.TTL, ok[5] = r.int()
	req.Expect, ok[6] = r.bytes()
	req.Holder, ok[7] = r.str()
	req.Proc, ok[8] = r.name()
	id, ok[9] = r.bytes()
	if ok[9] {
		req.ID, req.Retry, req.Age, ok[9] = parseOpID(id)
	}
	stashAt, ok[10] = r.name()
	req.Stash, ok[11] = r.uint()
	req.Timeout, ok[12] = 0, true
	if n == 13 {
		req.Timeout, ok[12] = r.uint()
	}
	req.Kind, req.Part, req.StashAt = opKind(kind), int32(part), partition.MemberID(stashAt)
	return ok == [13]bool{true, true, true, true, true, true, true, true, true, true, true, true, true} && len(r.b) == 0
}

// decodeOpRequest decodes an operation header into req; byte fields alias header.
func decodeOpRequest(header []byte, req *opRequest) error {
	if req.decodeFast(header) {
		return nil
	}
	*req = opRequest{}
	return fmt.Errorf("%w: operation header", ErrBadRequest)
}

// A response whose only fields are a status below 0x40, Done, Version and Value (the answer to
// nearly every single-key operation) has a compact header: one byte, status<<1 | Done, then
// Version as a uvarint unless it is 0. A msgpack header starts with an array code, 0x90 or
// above, so the first byte tells the two forms apart.
const maxCompactStatus = 0x40

// compactHeaders holds every one-byte compact header, so that sending one does not allocate.
// The transport only reads a sent header, and receivers get their own copy.
var compactHeaders = func() (b [2 * maxCompactStatus]byte) {
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

func encodeResponse(resp opResponse) (transport.Message, error) {
	if resp.Epoch == 0 && resp.Msg == "" && resp.Count == 0 && len(resp.Entries) == 0 && resp.Status < maxCompactStatus {
		h := byte(resp.Status) << 1
		if resp.Done {
			h |= 1
		}
		header := compactHeaders[h : h+1 : h+1]
		if resp.Version != 0 {
			header = binary.AppendUvarint(append(make([]byte, 0, 1+binary.MaxVarintLen64), h), resp.Version)
		}
		return transport.Message{Type: msgOp, Header: header, Body: resp.Value}, nil
	}
	return encodeResponseLong(resp)
}

func decodeResponse(msg transport.Message) (opResponse, error) {
	if len(msg.Header) > 0 && msg.Header[0] < 2*maxCompactStatus { // see encodeResponse
		resp := opResponse{Status: status(msg.Header[0] >> 1), Done: msg.Header[0]&1 == 1, Value: msg.Body}
		if len(msg.Header) > 1 {
			v, n := binary.Uvarint(msg.Header[1:])
			if n <= 0 || n != len(msg.Header)-1 || v == 0 {
				return opResponse{}, fmt.Errorf("%w: response header: bad compact form", ErrBadRequest)
			}
			resp.Version = v
		}
		return resp, nil
	}
	return decodeResponseLong(msg)
}

// encodeResponseLong encodes any other response as a msgpack array of its 8 fields: status,
// done, epoch, message, count, scanned keys, their values' lengths, version. Scanned values
// follow, concatenated, in the body. It is separate from encodeResponse so that the compact
// path stays small.
func encodeResponseLong(resp opResponse) (transport.Message, error) {
	body := resp.Value
	n := sizeArrayLen(8) + sizeUint(uint64(resp.Status)) + 1 + sizeUint(resp.Epoch) + sizeStr(resp.Msg) +
		sizeInt(int64(resp.Count)) + 2*sizeArrayLen(len(resp.Entries)) + sizeUint(resp.Version)
	total := 0
	for _, e := range resp.Entries {
		n += sizeBin(e.Key) + sizeInt(int64(len(e.Value)))
		total += len(e.Value)
	}
	h := make([]byte, 0, n)
	h = appendArrayLen(h, 8)
	h = appendUint(h, uint64(resp.Status))
	h = appendBool(h, resp.Done)
	h = appendUint(h, resp.Epoch)
	h = appendStr(h, resp.Msg)
	h = appendInt(h, int64(resp.Count))
	h = appendArrayLen(h, len(resp.Entries))
	for _, e := range resp.Entries {
		h = appendBin(h, e.Key)
	}
	h = appendArrayLen(h, len(resp.Entries))
	for _, e := range resp.Entries {
		h = appendInt(h, int64(len(e.Value)))
	}
	h = appendUint(h, resp.Version)
	if len(resp.Entries) > 0 {
		body = make([]byte, 0, total)
		for _, e := range resp.Entries {
			body = append(body, e.Value...)
		}
	}
	return transport.Message{Type: msgOp, Header: h, Body: body}, nil
}

// decodeResponseLong decodes what encodeResponseLong wrote; scanned keys alias the header and
// values the body.
func decodeResponseLong(msg transport.Message) (opResponse, error) {
	bad := func(what string) (opResponse, error) {
		return opResponse{}, fmt.Errorf("%w: response header: %s", ErrBadRequest, what)
	}
	r := wireReader{b: msg.Header}
	if n, ok := r.arrayLen(); !ok || n != 8 {
		return bad("not an array of 8 fields")
	}
	var resp opResponse
	var ok [6]bool
	var st uint64
	var count int64
	st, ok[0] = r.uint()
	resp.Done, ok[1] = r.bool()
	resp.Epoch, ok[2] = r.uint()
	resp.Msg, ok[3] = r.str()
	count, ok[4] = r.int()
	var nkeys int
	nkeys, ok[5] = r.arrayLen()
	// Every key takes at least one byte: a corrupt count cannot make this allocate much.
	if ok != [6]bool{true, true, true, true, true, true} || st > 0xff || nkeys > len(r.b) {
		return bad("malformed fields")
	}
	resp.Status, resp.Count = status(st), int(count)
	if nkeys > 0 {
		resp.Entries = make([]kv, nkeys)
	}
	for i := range resp.Entries {
		k, ok := r.bytes()
		if !ok {
			return bad("malformed key")
		}
		resp.Entries[i].Key = k
	}
	if n, ok := r.arrayLen(); !ok || n != nkeys {
		return bad("lengths do not match the keys")
	}
	off := 0
	for i := range resp.Entries {
		n, ok := r.int()
		if !ok || n < 0 || n > int64(len(msg.Body)-off) {
			return bad("scan values overrun the body")
		}
		resp.Entries[i].Value = msg.Body[off : off+int(n) : off+int(n)]
		off += int(n)
	}
	v, okv := r.uint()
	if !okv || len(r.b) != 0 {
		return bad("malformed version")
	}
	resp.Version = v
	if nkeys == 0 {
		resp.Value = msg.Body
	} else if off != len(msg.Body) {
		return bad("trailing scan values")
	}
	return resp, nil
}

// kv is one entry returned by a partition scan.
type kv struct {
	Key   []byte
	Value []byte
}
