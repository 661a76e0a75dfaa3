package storetest

import (
	"encoding/binary"
	"fmt"
)

// Bodies are sequences of fields, each a uvarint length followed by that many bytes, so keys and
// values of any content (empty, binary, NUL) travel unchanged. Integers travel as uvarint fields
// of their own (without a length).

// appendField appends one length-prefixed field.
func appendField(b, f []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}

// appendUint appends an integer field.
func appendUint(b []byte, n uint64) []byte { return binary.AppendUvarint(b, n) }

// reader decodes fields from a body; the fields it returns alias the body.
type reader struct {
	b   []byte
	err error
}

func (r *reader) more() bool { return r.err == nil && len(r.b) > 0 }

func (r *reader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = fmt.Errorf("%w: bad integer", ErrProtocol)
		return 0
	}
	r.b = r.b[k:]
	return n
}

func (r *reader) field() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: field of %d bytes with %d left", ErrProtocol, n, len(r.b))
		return nil
	}
	f := r.b[:n:n]
	r.b = r.b[n:]
	return f
}

// fields decodes the whole body as fields.
func (r *reader) fields() [][]byte {
	var out [][]byte
	for r.more() {
		out = append(out, r.field())
	}
	return out
}

// done reports a decoding error, or trailing bytes after the expected fields.
func (r *reader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrProtocol, len(r.b))
	}
	return r.err
}
