package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/msgpackcheck"
	"github.com/gridmap/gridmap/partition"
)

// The headers on the hot path encode themselves as msgpack arrays of their fields, in order:
// no field names on the wire and no reflection, which halves the cost of an operation's
// encoding. Adding a field means appending it and bumping the array length; decoders accept
// longer arrays (newer peers) by skipping the extra fields.

var (
	_ msgpack.CustomEncoder = (*opRequest)(nil)
	_ msgpack.CustomDecoder = (*opRequest)(nil)
	_ msgpack.CustomEncoder = (*opResponse)(nil)
	_ msgpack.CustomDecoder = (*opResponse)(nil)
	_ msgpack.CustomEncoder = (*batchHeader)(nil)
	_ msgpack.CustomDecoder = (*batchHeader)(nil)
)

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *opRequest) EncodeMsgpack(e *msgpack.Encoder) error {
	return encodeAll(e, 13,
		func() error { return e.EncodeString(r.Map) },
		func() error { return e.EncodeUint(uint64(r.Kind)) },
		func() error { return e.EncodeInt(int64(r.Part)) },
		func() error { return e.EncodeUint(r.Epoch) },
		func() error { return e.EncodeBytes(r.Key) },
		func() error { return e.EncodeInt(r.TTL) },
		func() error { return e.EncodeBytes(r.Expect) },
		func() error { return e.EncodeString(r.Holder) },
		func() error { return e.EncodeString(r.Proc) },
		func() error { return e.EncodeBytes(r.ID.bytes(r.Retry)) },
		func() error { return e.EncodeString(string(r.StashAt)) },
		func() error { return e.EncodeUint(r.Stash) },
		func() error { return e.EncodeUint(r.Timeout) },
	)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *opRequest) DecodeMsgpack(d *msgpack.Decoder) error {
	var kind uint64
	var part int64
	var stashAt string
	// A peer from before Timeout sends 12 fields.
	err := decodeAll(d, 12,
		func() (err error) { r.Map, err = d.DecodeString(); return },
		func() (err error) { kind, err = d.DecodeUint64(); r.Kind = opKind(kind); return },
		func() (err error) { part, err = d.DecodeInt64(); r.Part = int32(part); return },
		func() (err error) { r.Epoch, err = d.DecodeUint64(); return },
		func() (err error) { r.Key, err = d.DecodeBytes(); return },
		func() (err error) { r.TTL, err = d.DecodeInt64(); return },
		func() (err error) { r.Expect, err = d.DecodeBytes(); return },
		func() (err error) { r.Holder, err = d.DecodeString(); return },
		func() (err error) { r.Proc, err = d.DecodeString(); return },
		func() error {
			b, err := d.DecodeBytes()
			if err != nil {
				return err
			}
			var ok bool
			if r.ID, r.Retry, ok = parseOpID(b); !ok {
				return fmt.Errorf("malformed operation id (%d bytes)", len(b))
			}
			return nil
		},
		func() (err error) { stashAt, err = d.DecodeString(); return },
		func() (err error) { r.Stash, err = d.DecodeUint64(); return },
		func() (err error) { r.Timeout, err = d.DecodeUint64(); return },
	)
	r.StashAt = partition.MemberID(stashAt)
	return err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *opResponse) EncodeMsgpack(e *msgpack.Encoder) error {
	return encodeAll(e, 8,
		func() error { return e.EncodeUint(uint64(r.Status)) },
		func() error { return e.EncodeBool(r.Done) },
		func() error { return e.EncodeUint(r.Epoch) },
		func() error { return e.EncodeString(r.Msg) },
		func() error { return e.EncodeInt(int64(r.Count)) },
		func() error { return encodeSlice(e, r.Keys, e.EncodeBytes) },
		func() error { return encodeSlice(e, r.VLen, func(n int) error { return e.EncodeInt(int64(n)) }) },
		func() error { return e.EncodeUint(r.Version) },
	)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *opResponse) DecodeMsgpack(d *msgpack.Decoder) error {
	var st uint64
	var count int64
	return decodeAll(d, 8,
		func() (err error) { st, err = d.DecodeUint64(); r.Status = status(st); return },
		func() (err error) { r.Done, err = d.DecodeBool(); return },
		func() (err error) { r.Epoch, err = d.DecodeUint64(); return },
		func() (err error) { r.Msg, err = d.DecodeString(); return },
		func() (err error) { count, err = d.DecodeInt64(); r.Count = int(count); return },
		func() (err error) { r.Keys, err = decodeSlice(d, d.DecodeBytes); return },
		func() (err error) { r.VLen, err = decodeSlice(d, d.DecodeInt); return },
		func() (err error) { r.Version, err = d.DecodeUint64(); return },
	)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (h *batchHeader) EncodeMsgpack(e *msgpack.Encoder) error {
	return encodeAll(e, 5,
		func() error { return e.EncodeInt(int64(h.Part)) },
		func() error { return e.EncodeUint(h.Epoch) },
		func() error { return e.EncodeString(h.From) },
		func() error {
			return encodeSlice(e, h.Muts, func(m mutation) error {
				return encodeAll(e, 11,
					func() error { return e.EncodeString(m.Map) },
					func() error { return e.EncodeUint(uint64(m.Kind)) },
					func() error { return e.EncodeBytes(m.Key) },
					func() error { return e.EncodeInt(m.ExpireAt) },
					func() error { return e.EncodeUint(m.Seq) },
					func() error { return e.EncodeString(m.Holder) },
					func() error { return e.EncodeInt(int64(m.Count)) },
					func() error { return e.EncodeBool(m.Clean) },
					func() error { return e.EncodeUint(m.Stash) },
					func() error { return e.EncodeBytes(m.Op.bytes(false)) },
					func() error { return e.EncodeUint(uint64(m.Ans)) },
				)
			})
		},
		func() error { return encodeSlice(e, h.VLen, func(n int) error { return e.EncodeInt(int64(n)) }) },
	)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (h *batchHeader) DecodeMsgpack(d *msgpack.Decoder) error {
	var part int64
	return decodeAll(d, 5,
		func() (err error) { part, err = d.DecodeInt64(); h.Part = int32(part); return },
		func() (err error) { h.Epoch, err = d.DecodeUint64(); return },
		func() (err error) { h.From, err = d.DecodeString(); return },
		func() (err error) {
			h.Muts, err = decodeSlice(d, func() (mutation, error) {
				var m mutation
				var kind uint64
				var count int64
				var ans uint64
				err := decodeAll(d, 11,
					func() (err error) { m.Map, err = d.DecodeString(); return },
					func() (err error) { kind, err = d.DecodeUint64(); m.Kind = mutKind(kind); return },
					func() (err error) { m.Key, err = d.DecodeBytes(); return },
					func() (err error) { m.ExpireAt, err = d.DecodeInt64(); return },
					func() (err error) { m.Seq, err = d.DecodeUint64(); return },
					func() (err error) { m.Holder, err = d.DecodeString(); return },
					func() (err error) { count, err = d.DecodeInt64(); m.Count = int(count); return },
					func() (err error) { m.Clean, err = d.DecodeBool(); return },
					func() (err error) { m.Stash, err = d.DecodeUint64(); return },
					func() error {
						b, err := d.DecodeBytes()
						if err != nil {
							return err
						}
						var ok, retry bool
						if m.Op, retry, ok = parseOpID(b); !ok || retry {
							return fmt.Errorf("malformed operation id (%d bytes)", len(b))
						}
						return nil
					},
					func() (err error) { ans, err = d.DecodeUint64(); m.Ans = answer(ans); return },
				)
				if ans > 0xff {
					return m, fmt.Errorf("answer %d out of range", ans)
				}
				return m, err
			})
			return
		},
		func() (err error) { h.VLen, err = decodeSlice(d, d.DecodeInt); return },
	)
}

func encodeAll(e *msgpack.Encoder, n int, fields ...func() error) error {
	if err := e.EncodeArrayLen(n); err != nil {
		return err
	}
	for _, f := range fields {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// decodeAll reads an array of at least n fields with fields, whose first n are required and
// the others (fields added later) decoded only when present; extra trailing fields are
// skipped.
func decodeAll(d *msgpack.Decoder, n int, fields ...func() error) error {
	l, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if l < n {
		return fmt.Errorf("header has %d fields, want %d", l, n)
	}
	for _, f := range fields[:min(l, len(fields))] {
		if err := f(); err != nil {
			return err
		}
	}
	for range l - min(l, len(fields)) {
		if err := d.Skip(); err != nil {
			return err
		}
	}
	return nil
}

func encodeSlice[T any](e *msgpack.Encoder, s []T, enc func(T) error) error {
	if err := e.EncodeArrayLen(len(s)); err != nil {
		return err
	}
	for _, v := range s {
		if err := enc(v); err != nil {
			return err
		}
	}
	return nil
}

// maxHeaderItems bounds the length of any array in a header, so that a corrupt length cannot
// make a decoder allocate without limit.
const maxHeaderItems = 1 << 24

func decodeSlice[T any](d *msgpack.Decoder, dec func() (T, error)) ([]T, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	if n > maxHeaderItems {
		return nil, fmt.Errorf("header array of %d items", n)
	}
	out := make([]T, 0, min(n, 1024))
	for range n {
		v, err := dec()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// headerCodec is a reusable msgpack encoder and decoder for the hot-path headers (operation
// requests and responses, replication batches). marshalHeader returns a fresh slice (the
// transport may read a sent header after the call returned), and decoded values never alias the
// codec's buffers (msgpack copies strings and byte slices), so reuse is invisible to callers.
type headerCodec struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
	rd  bytes.Reader
	dec *msgpack.Decoder
}

var headerCodecs = sync.Pool{New: func() any {
	return &headerCodec{enc: msgpack.NewEncoder(nil), dec: msgpack.NewDecoder(nil)}
}}

// maxPooledHeader is the largest encoding buffer kept for reuse.
const maxPooledHeader = 64 << 10

// marshalHeader is msgpack.Marshal with a pooled encoder and buffer. (Operation requests are
// encoded by their appender, see encodeOpRequest.)
func marshalHeader(v any) ([]byte, error) {
	c := headerCodecs.Get().(*headerCodec)
	c.buf.Reset()
	c.enc.Reset(&c.buf)
	err := c.enc.Encode(v)
	var out []byte
	if err == nil {
		out = make([]byte, c.buf.Len())
		copy(out, c.buf.Bytes())
	}
	c.enc.Reset(nil)
	if c.buf.Cap() > maxPooledHeader {
		c.buf = bytes.Buffer{}
	}
	headerCodecs.Put(c)
	return out, err
}

// unmarshalHeader is msgpack.Unmarshal with a pooled decoder, for headers msgpackcheck accepts
// (a length prefix larger than the header would make the decoder allocate what it declares).
func unmarshalHeader(data []byte, v any) error {
	if err := msgpackcheck.Valid(data); err != nil {
		return err
	}
	c := headerCodecs.Get().(*headerCodec)
	c.rd.Reset(data)
	c.dec.Reset(&c.rd)
	c.dec.UsePreallocateValues(true) // as msgpack.Unmarshal
	err := c.dec.Decode(v)
	c.dec.Reset(nil)
	c.rd.Reset(nil)
	headerCodecs.Put(c)
	return err
}

// The hot-path headers are also encoded and decoded by the hand-written code below, which
// produces exactly the bytes of their EncodeMsgpack methods (the compact msgpack forms) into
// one right-sized allocation, and decodes them without a msgpack.Decoder: byte fields alias the
// header (a received header belongs to the receiver and is never reused), and map names and
// member IDs come from a small intern table. Per message this saves the encoder's copy, the
// decoder's copies of every string and byte field, and the escape of the value passed as any.
// Anything the fast decoders do not expect (longer arrays from a newer peer, other msgpack
// forms, malformed input) is handed to the msgpack-based decoders above, so what is accepted,
// and the errors for what is not, stay theirs.

// msgpack type codes (the msgpcode package has them as variables, which cannot be switched on).
const (
	mpPosFixNumHigh byte = 0x7f
	mpFixedArrayLow byte = 0x90
	mpFixedStrLow   byte = 0xa0
	mpNil           byte = 0xc0
	mpFalse         byte = 0xc2
	mpTrue          byte = 0xc3
	mpBin8          byte = 0xc4
	mpBin16         byte = 0xc5
	mpBin32         byte = 0xc6
	mpUint8         byte = 0xcc
	mpUint16        byte = 0xcd
	mpUint32        byte = 0xce
	mpUint64        byte = 0xcf
	mpInt8          byte = 0xd0
	mpInt16         byte = 0xd1
	mpInt32         byte = 0xd2
	mpInt64         byte = 0xd3
	mpStr8          byte = 0xd9
	mpStr16         byte = 0xda
	mpStr32         byte = 0xdb
	mpArray16       byte = 0xdc
	mpArray32       byte = 0xdd
	mpNegFixNumLow  byte = 0xe0
)

// Sizes of msgpack encodings, as the msgpack/v5 encoder chooses them.

func sizeUint(n uint64) int {
	switch {
	case n <= math.MaxInt8:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

func sizeInt(n int64) int {
	switch {
	case n >= 0:
		return sizeUint(uint64(n))
	case n >= -32:
		return 1
	case n >= math.MinInt8:
		return 2
	case n >= math.MinInt16:
		return 3
	case n >= math.MinInt32:
		return 5
	}
	return 9
}

// sizeLen is the size of a str or bin length prefix (fixstr for short strings).
func sizeLen(l int, str bool) int {
	switch {
	case str && l < 32:
		return 1
	case l < 256:
		return 2
	case l <= math.MaxUint16:
		return 3
	}
	return 5
}

func sizeStr(s string) int { return sizeLen(len(s), true) + len(s) }

func sizeBin(b []byte) int {
	if b == nil {
		return 1 // nil
	}
	return sizeLen(len(b), false) + len(b)
}

func sizeArrayLen(l int) int {
	switch {
	case l < 16:
		return 1
	case l <= math.MaxUint16:
		return 3
	}
	return 5
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, mpUint8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpUint16), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, mpUint64), n)
}

func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, mpInt8, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, mpInt16), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(n))
}

func appendLen(b []byte, l int, str bool) []byte {
	switch {
	case str && l < 32:
		return append(b, mpFixedStrLow|byte(l))
	case l < 256:
		c := mpBin8
		if str {
			c = mpStr8
		}
		return append(b, c, byte(l))
	case l <= math.MaxUint16:
		c := mpBin16
		if str {
			c = mpStr16
		}
		return binary.BigEndian.AppendUint16(append(b, c), uint16(l))
	}
	c := mpBin32
	if str {
		c = mpStr32
	}
	return binary.BigEndian.AppendUint32(append(b, c), uint32(l))
}

func appendStr(b []byte, s string) []byte { return append(appendLen(b, len(s), true), s...) }

func appendBin(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, mpNil)
	}
	return append(appendLen(b, len(v), false), v...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

func appendArrayLen(b []byte, l int) []byte {
	switch {
	case l < 16:
		return append(b, mpFixedArrayLow|byte(l))
	case l <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpArray16), uint16(l))
	}
	return binary.BigEndian.AppendUint32(append(b, mpArray32), uint32(l))
}

func (r *opRequest) encodedSize() int {
	return sizeArrayLen(13) + sizeStr(r.Map) + sizeUint(uint64(r.Kind)) + sizeInt(int64(r.Part)) +
		sizeUint(r.Epoch) + sizeBin(r.Key) + sizeInt(r.TTL) + sizeBin(r.Expect) + sizeStr(r.Holder) +
		sizeStr(r.Proc) + sizeOpID(r.ID, r.Retry) + sizeStr(string(r.StashAt)) + sizeUint(r.Stash) + sizeUint(r.Timeout)
}

// appendTo appends the bytes EncodeMsgpack writes.
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
	b = appendOpID(b, r.ID, r.Retry)
	b = appendStr(b, string(r.StashAt))
	b = appendUint(b, r.Stash)
	return appendUint(b, r.Timeout)
}

func (m *mutation) encodedSize() int {
	return sizeArrayLen(11) + sizeStr(m.Map) + sizeUint(uint64(m.Kind)) + sizeBin(m.Key) + sizeInt(m.ExpireAt) +
		sizeUint(m.Seq) + sizeStr(m.Holder) + sizeInt(int64(m.Count)) + 1 + sizeUint(m.Stash) +
		sizeOpID(m.Op, false) + sizeUint(uint64(m.Ans))
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
	b = appendOpID(b, m.Op, false)
	return appendUint(b, uint64(m.Ans))
}

// marshalBatchHeader returns the bytes batchHeader.EncodeMsgpack writes for a batch of muts, in
// one allocation; the value lengths are taken from the mutations.
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

// wireReader reads the msgpack forms the appenders above write. Every method reports false for
// anything else (including truncation), and the caller then falls back to the msgpack decoder.
type wireReader struct {
	b []byte
}

func (r *wireReader) byte() (byte, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, true
}

// fixed reads an n-byte big-endian unsigned number.
func (r *wireReader) fixed(n int) (uint64, bool) {
	if len(r.b) < n {
		return 0, false
	}
	var v uint64
	for _, c := range r.b[:n] {
		v = v<<8 | uint64(c)
	}
	r.b = r.b[n:]
	return v, true
}

func (r *wireReader) arrayLen() (int, bool) {
	c, ok := r.byte()
	switch {
	case !ok:
		return 0, false
	case c >= mpFixedArrayLow && c <= mpFixedArrayLow|0x0f:
		return int(c & 0x0f), true
	case c == mpArray16:
		n, ok := r.fixed(2)
		return int(n), ok
	case c == mpArray32:
		n, ok := r.fixed(4)
		return int(n), ok
	}
	return 0, false
}

// uint reads an unsigned number (positive fixint or uint 8 to 64).
func (r *wireReader) uint() (uint64, bool) {
	c, ok := r.byte()
	switch {
	case !ok:
		return 0, false
	case c <= mpPosFixNumHigh:
		return uint64(c), true
	case c >= mpUint8 && c <= mpUint64:
		return r.fixed(1 << (c - mpUint8))
	}
	return 0, false
}

// int reads a signed number: any integer form whose value fits an int64.
func (r *wireReader) int() (int64, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	switch {
	case c >= mpNegFixNumLow: // negative fixint
		r.b = r.b[1:]
		return int64(int8(c)), true
	case c >= mpInt8 && c <= mpInt64:
		r.b = r.b[1:]
		size := 1 << (c - mpInt8)
		v, ok := r.fixed(size)
		return int64(v<<(64-8*size)) >> (64 - 8*size), ok // sign-extend
	}
	v, ok := r.uint()
	return int64(v), ok && v <= math.MaxInt64
}

// data reads a str (str true) or bin value, aliasing r's buffer; nil reads as a nil slice.
func (r *wireReader) data(str bool) ([]byte, bool) {
	c, ok := r.byte()
	var n uint64
	switch {
	case !ok:
		return nil, false
	case c == mpNil:
		return nil, true
	case str && c >= mpFixedStrLow && c <= mpFixedStrLow|0x1f:
		n = uint64(c & 0x1f)
	case str && c >= mpStr8 && c <= mpStr32:
		n, ok = r.fixed(1 << (c - mpStr8))
	case !str && c >= mpBin8 && c <= mpBin32:
		n, ok = r.fixed(1 << (c - mpBin8))
	default:
		return nil, false
	}
	if !ok || n > uint64(len(r.b)) {
		return nil, false
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, true
}

func (r *wireReader) bool() (bool, bool) {
	c, ok := r.byte()
	switch {
	case ok && c == mpTrue:
		return true, true
	case ok && c == mpFalse:
		return false, true
	}
	return false, false
}

// bytes reads a bin value. Like msgpack's DecodeBytes, an empty value reads as an empty non-nil
// slice and nil as nil.
func (r *wireReader) bytes() ([]byte, bool) { return r.data(false) }

// str reads a string into a new string.
func (r *wireReader) str() (string, bool) {
	v, ok := r.data(true)
	return string(v), ok
}

// name reads a string that recurs across messages (a map name, a member ID) through names.
func (r *wireReader) name() (string, bool) {
	v, ok := r.data(true)
	return names.intern(v), ok
}

// decodeFast decodes what appendTo wrote; byte fields alias header. It reports false when the
// header is not in that exact form.
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
		req.ID, req.Retry, ok[9] = parseOpID(id)
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

// decodeOpRequest decodes an operation header into req.
func decodeOpRequest(header []byte, req *opRequest) error {
	if req.decodeFast(header) {
		return nil
	}
	*req = opRequest{}
	return decodeOpRequestSlow(header, req)
}

func decodeOpRequestSlow(header []byte, req *opRequest) error {
	var r opRequest
	err := unmarshalHeader(header, &r)
	*req = r
	return err
}

// internTable maps the bytes of strings that recur in nearly every message (map names, member
// IDs, processor names) to one shared string, so that decoding them does not allocate. It is
// direct-mapped and lock-free: a string evicts whatever shared its slot, so the table stays
// bounded whatever names arrive, and a miss costs only the allocation decoding always did.
type internTable struct {
	seed  maphash.Seed
	slots [256]atomic.Pointer[string]
}

// maxInterned is the longest string interned; longer ones are unlikely to be names.
const maxInterned = 64

var names = internTable{seed: maphash.MakeSeed()}

func (t *internTable) intern(b []byte) string {
	if len(b) == 0 || len(b) > maxInterned {
		return string(b)
	}
	slot := &t.slots[maphash.Bytes(t.seed, b)%uint64(len(t.slots))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
