package engine

import "fmt"

// Replication on the wire (msgBackup, and the copy messages msgSyncBegin, msgSyncChunk,
// msgSyncEnd and msgResyncProbe): a batch of one partition's mutations.

// batchHeader carries mutations of one partition; their values follow, concatenated, in the
// message body, so that a single large value is sent without being copied.
type batchHeader struct {
	Part  int32
	Epoch uint64
	// From is the sending owner's member ID.
	From string
	Muts []mutation
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
	*h = batchHeader{}
	return fmt.Errorf("%w: batch header", ErrBadRequest)
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

// decodeFast decodes what marshalBatchHeader wrote, without allocating the lengths. It reports
// false, leaving h to be discarded, for a header in any other form, and an error for a
// well-formed header whose values do not match its body.
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
		m.Op, retry, _, ok[9] = parseOpID(id)
		ok[9] = ok[9] && !retry
	}
	ans, ok[10] = r.uint()
	m.Kind, m.Count, m.Ans = mutKind(kind), int(count), answer(ans)
	return ok == [11]bool{true, true, true, true, true, true, true, true, true, true, true} && ans <= 0xff
}

func (m *mutation) encodedSize() int {
	return sizeArrayLen(11) + sizeStr(m.Map) + sizeUint(uint64(m.Kind)) + sizeBin(m.Key) + sizeInt(m.ExpireAt) +
		sizeUint(m.Seq) + sizeStr(m.Holder) + sizeInt(int64(m.Count)) + 1 + sizeUint(m.Stash) +
		sizeOpID(m.Op, false, 0) + sizeUint(uint64(m.Ans))
}

func (m *mutation) appendTo(b []byte) []byte {
	b = appendArrayLen(b, 11)
	b = appendStr(b, m.Map)
	b = appendUint(b, uint64(m.Kind))
	b = appendBin(b, m.Key)
	b = appendInt(b, m.ExpireAt)
	b = appendUint(b, m.Seq)
	b = appendStr(b, m.Holder)
	b = appendInt(b, int64(m.Count))
	b = appendBool(b, m.Clean)
	b = appendUint(b, m.Stash)
	b = appendOpID(b, m.Op, false, 0)
	return appendUint(b, uint64(m.Ans))
}

// marshalBatchHeader returns the header of a batch of muts, a msgpack array of part, epoch,
// sender, the mutations (each an array of 11 fields) and their values' lengths, in one
// allocation; the lengths are taken from the mutations.
func marshalBatchHeader(part int32, epoch uint64, from string, muts []mutation) []byte {
	n := sizeArrayLen(5) + sizeInt(int64(part)) + sizeUint(epoch) + sizeStr(from) + 2*sizeArrayLen(len(muts))
	for i := range muts {
		n += muts[i].encodedSize() + sizeInt(int64(len(muts[i].Value)))
	}
	b := make([]byte, 0, n)
	b = appendArrayLen(b, 5)
	b = appendInt(b, int64(part))
	b = appendUint(b, epoch)
	b = appendStr(b, from)
	b = appendArrayLen(b, len(muts))
	for i := range muts {
		b = muts[i].appendTo(b)
	}
	b = appendArrayLen(b, len(muts))
	for i := range muts {
		b = appendInt(b, int64(len(muts[i].Value)))
	}
	return b
}
