package engine

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
	header = marshalBatchHeader(part, epoch, from, muts)
	switch len(muts) {
	case 0:
	case 1:
		body = muts[0].Value
	default:
		total := 0
		for _, m := range muts {
			total += len(m.Value)
		}
		body = make([]byte, 0, total)
		for _, m := range muts {
			body = append(body, m.Value...)
		}
	}
	return header, body, nil
}

// decodeBatch parses a batch; the mutations' values alias body, and their keys alias header.
func decodeBatch(header, body []byte) (batchHeader, error) {
	var h batchHeader
	err := h.decode(header, body)
	return h, err
}

// decode parses a batch into h, as decodeBatch. The mutations go into h.Muts's array when it
// has room for them, so that a caller can decode a one-mutation batch (a backup of one write)
// without allocating.
func (h *batchHeader) decode(header, body []byte) error {
	if ok, err := h.decodeFast(header, body); ok {
		return err
	}
	slow, err := decodeBatchSlow(header, body)
	*h = slow
	return err
}

// decodeBatchSlow is decodeBatch with the msgpack decoder, for headers decodeFast does not
// read. It is a separate function so that decodeBatch's header does not escape to the heap.
func decodeBatchSlow(header, body []byte) (batchHeader, error) {
	var h batchHeader
	if err := unmarshalHeader(header, &h); err != nil {
		return batchHeader{}, fmt.Errorf("%w: batch header: %v", ErrBadRequest, err)
	}
	if len(h.VLen) != len(h.Muts) {
		return h, fmt.Errorf("%w: batch has %d mutations and %d lengths", ErrBadRequest, len(h.Muts), len(h.VLen))
	}
	off := 0
	for i, n := range h.VLen {
		if err := h.setValue(i, n, body, &off); err != nil {
			return h, err
		}
	}
	if off != len(body) {
		return h, fmt.Errorf("%w: batch body has %d trailing bytes", ErrBadRequest, len(body)-off)
	}
	return h, nil
}

// setValue gives mutation i the next n bytes of body, starting at *off, and checks its kind.
func (h *batchHeader) setValue(i, n int, body []byte, off *int) error {
	if n < 0 || n > len(body)-*off {
		return fmt.Errorf("%w: batch value %d overruns the body", ErrBadRequest, i)
	}
	h.Muts[i].Value = body[*off : *off+n : *off+n]
	*off += n
	if !h.Muts[i].Kind.valid() {
		return fmt.Errorf("%w: unknown mutation kind %d", ErrBadRequest, h.Muts[i].Kind)
	}
	return nil
}

// decodeFast decodes what marshalBatchHeader wrote, as decodeBatchSlow would, without
// allocating the lengths. It reports false, leaving h to be discarded, for a header in any other
// form.
func (h *batchHeader) decodeFast(header, body []byte) (bool, error) {
	r := wireReader{b: header}
	if n, ok := r.arrayLen(); !ok || n != 5 {
		return false, nil
	}
	part, ok1 := r.int()
	epoch, ok2 := r.uint()
	from, ok3 := r.name()
	n, ok4 := r.arrayLen()
	// Every mutation takes at least 11 bytes: a corrupt count cannot make this allocate much.
	if !ok1 || !ok2 || !ok3 || !ok4 || n > len(r.b)/11 {
		return false, nil
	}
	h.Part, h.Epoch, h.From = int32(part), epoch, from
	if cap(h.Muts) >= n {
		h.Muts = h.Muts[:n]
		clear(h.Muts)
	} else {
		h.Muts = make([]mutation, n)
	}
	for i := range h.Muts {
		if !h.Muts[i].decodeFast(&r) {
			return false, nil
		}
	}
	if l, ok := r.arrayLen(); !ok || l != n {
		return false, nil
	}
	// The lengths are read twice: once to check that the header is well-formed to its end (its
	// errors come first), then to cut the values out of the body.
	lens := r
	for range n {
		if _, ok := r.int(); !ok {
			return false, nil
		}
	}
	if len(r.b) != 0 {
		return false, nil
	}
	off := 0
	for i := range n {
		vlen, _ := lens.int()
		if err := h.setValue(i, int(vlen), body, &off); err != nil {
			return true, err
		}
	}
	if off != len(body) {
		return true, fmt.Errorf("%w: batch body has %d trailing bytes", ErrBadRequest, len(body)-off)
	}
	return true, nil
}

// decodeFast reads a mutation as mutation.appendTo wrote it.
func (m *mutation) decodeFast(r *wireReader) bool {
	if n, ok := r.arrayLen(); !ok || n != 11 {
		return false
	}
	var ok [11]bool
	var kind, ans uint64
	var count int64
	var id []byte
	m.Map, ok[0] = r.name()
	kind, ok[1] = r.uint()
	m.Key, ok[2] = r.bytes()
	m.ExpireAt, ok[3] = r.int()
	m.Seq, ok[4] = r.uint()
	m.Holder, ok[5] = r.str()
	count, ok[6] = r.int()
	m.Clean, ok[7] = r.bool()
	m.Stash, ok[8] = r.uint()
	id, ok[9] = r.bytes()
	if ok[9] {
		var retry bool
		m.Op, retry, ok[9] = parseOpID(id)
		ok[9] = ok[9] && !retry
	}
	ans, ok[10] = r.uint()
	m.Kind, m.Count, m.Ans = mutKind(kind), int(count), answer(ans)
	return ok == [11]bool{true, true, true, true, true, true, true, true, true, true, true} && ans <= 0xff
}

// kv is one entry returned by a partition scan.
type kv struct {
	Key   []byte
	Value []byte
}
