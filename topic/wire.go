package topic

import (
	"encoding/binary"
	"fmt"
)

// The arguments and results of the partition processors, as they travel between members.

// publishArg: the ring capacity (uvarint; 0: keep the ring's), the number of messages
// (uvarint), then each message's length (uvarint) and bytes.
func encodePublishArg(capacity uint64, payloads ...[]byte) []byte {
	size := 2 * binary.MaxVarintLen64
	for _, p := range payloads {
		size += binary.MaxVarintLen32 + len(p)
	}
	b := binary.AppendUvarint(make([]byte, 0, size), capacity)
	b = binary.AppendUvarint(b, uint64(len(payloads)))
	for _, p := range payloads {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// decodePublishArg decodes a publishArg. The payloads are copies: the engine keeps what a
// processor writes.
func decodePublishArg(b []byte) (capacity uint64, payloads [][]byte, err error) {
	bad := func(what string) (uint64, [][]byte, error) {
		return 0, nil, fmt.Errorf("%w: topic: publish argument: %s", ErrBadRequest, what)
	}
	capacity, k := binary.Uvarint(b)
	if k <= 0 || capacity > MaxRingCapacity {
		return bad("capacity")
	}
	b = b[k:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > uint64(len(b)) {
		return bad("count")
	}
	b = b[k:]
	payloads = make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return bad("message length")
		}
		payloads = append(payloads, append([]byte(nil), b[k:k+int(l)]...))
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return capacity, payloads, nil
}

// readArg asks for up to max messages from sequence number from on, about maxBytes in all.
type readArg struct {
	from     uint64
	max      uint32
	maxBytes uint32
}

func (a readArg) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), a.from)
	b = binary.BigEndian.AppendUint32(b, a.max)
	return binary.BigEndian.AppendUint32(b, a.maxBytes)
}

func decodeReadArg(b []byte) (readArg, error) {
	if len(b) != 16 {
		return readArg{}, fmt.Errorf("%w: topic: bad read argument", ErrBadRequest)
	}
	return readArg{from: binary.BigEndian.Uint64(b), max: binary.BigEndian.Uint32(b[8:]), maxBytes: binary.BigEndian.Uint32(b[12:])}, nil
}

// readResult is the ring's bounds [oldest, next) and the messages first, first+1, ...
type readResult struct {
	next, oldest, first uint64
	msgs                [][]byte
}

func (r readResult) encode() []byte {
	size := 24 + binary.MaxVarintLen64
	for _, m := range r.msgs {
		size += binary.MaxVarintLen32 + len(m)
	}
	b := make([]byte, 0, size)
	b = binary.BigEndian.AppendUint64(b, r.next)
	b = binary.BigEndian.AppendUint64(b, r.oldest)
	b = binary.BigEndian.AppendUint64(b, r.first)
	b = binary.AppendUvarint(b, uint64(len(r.msgs)))
	for _, m := range r.msgs {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b
}

// decodeReadResult decodes what a partition's owner answered. The messages alias b.
func decodeReadResult(b []byte) (readResult, error) {
	bad := func(what string) (readResult, error) {
		return readResult{}, fmt.Errorf("%w: topic: read result: %s", ErrBadRequest, what)
	}
	if len(b) < 24 {
		return bad("short")
	}
	r := readResult{next: binary.BigEndian.Uint64(b), oldest: binary.BigEndian.Uint64(b[8:]), first: binary.BigEndian.Uint64(b[16:])}
	b = b[24:]
	if r.oldest > r.next || r.first < r.oldest {
		return bad("bounds")
	}
	n, k := binary.Uvarint(b)
	avail := uint64(0)
	if r.first < r.next {
		avail = r.next - r.first
	}
	if k <= 0 || n > uint64(len(b)) || n > avail {
		return bad("count")
	}
	b = b[k:]
	r.msgs = make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return bad("message length")
		}
		r.msgs = append(r.msgs, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return r, nil
}
