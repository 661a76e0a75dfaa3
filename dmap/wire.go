package dmap

import (
	"fmt"
)

// batchHeader carries mutations of one partition; their values follow, concatenated, in the
// message body, so that a single large value is sent without being copied.
type batchHeader struct {
	Part  int32  `msgpack:"p"`
	Epoch uint64 `msgpack:"e"`
	// From is the sending owner's member ID.
	From string     `msgpack:"f"`
	Muts []mutation `msgpack:"u"`
	VLen []int      `msgpack:"l"`
}

// encodeBatch returns the msgpack header and the body for mutations. With one mutation the body
// is its value, not a copy.
func encodeBatch(part int32, epoch uint64, from string, muts []mutation) (header, body []byte, err error) {
	h := batchHeader{Part: part, Epoch: epoch, From: from, Muts: muts, VLen: make([]int, len(muts))}
	total := 0
	for i, m := range muts {
		h.VLen[i] = len(m.Value)
		total += len(m.Value)
	}
	header, err = marshalHeader(&h)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encode batch: %v", ErrCodec, err)
	}
	switch len(muts) {
	case 0:
	case 1:
		body = muts[0].Value
	default:
		body = make([]byte, 0, total)
		for _, m := range muts {
			body = append(body, m.Value...)
		}
	}
	return header, body, nil
}

// decodeBatch parses a batch; the mutations' values alias body.
func decodeBatch(header, body []byte) (batchHeader, error) {
	var h batchHeader
	if err := unmarshalHeader(header, &h); err != nil {
		return h, fmt.Errorf("%w: batch header: %v", ErrBadRequest, err)
	}
	if len(h.VLen) != len(h.Muts) {
		return h, fmt.Errorf("%w: batch has %d mutations and %d lengths", ErrBadRequest, len(h.Muts), len(h.VLen))
	}
	off := 0
	for i, n := range h.VLen {
		if n < 0 || n > len(body)-off {
			return h, fmt.Errorf("%w: batch value %d overruns the body", ErrBadRequest, i)
		}
		h.Muts[i].Value = body[off : off+n : off+n]
		off += n
		if !h.Muts[i].Kind.valid() {
			return h, fmt.Errorf("%w: unknown mutation kind %d", ErrBadRequest, h.Muts[i].Kind)
		}
	}
	if off != len(body) {
		return h, fmt.Errorf("%w: batch body has %d trailing bytes", ErrBadRequest, len(body)-off)
	}
	return h, nil
}

// kv is one entry returned by a partition scan.
type kv struct {
	Key   []byte
	Value []byte
}
