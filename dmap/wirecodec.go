package dmap

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
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
	return encodeAll(e, 10,
		func() error { return e.EncodeString(r.Map) },
		func() error { return e.EncodeUint(uint64(r.Kind)) },
		func() error { return e.EncodeInt(int64(r.Part)) },
		func() error { return e.EncodeUint(r.Epoch) },
		func() error { return e.EncodeBytes(r.Key) },
		func() error { return e.EncodeInt(r.TTL) },
		func() error { return e.EncodeBytes(r.Expect) },
		func() error { return e.EncodeString(r.Holder) },
		func() error { return e.EncodeString(r.Proc) },
		func() error { return e.EncodeString(r.ID) },
	)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *opRequest) DecodeMsgpack(d *msgpack.Decoder) error {
	var kind uint64
	var part int64
	return decodeAll(d, 10,
		func() (err error) { r.Map, err = d.DecodeString(); return },
		func() (err error) { kind, err = d.DecodeUint64(); r.Kind = opKind(kind); return },
		func() (err error) { part, err = d.DecodeInt64(); r.Part = int32(part); return },
		func() (err error) { r.Epoch, err = d.DecodeUint64(); return },
		func() (err error) { r.Key, err = d.DecodeBytes(); return },
		func() (err error) { r.TTL, err = d.DecodeInt64(); return },
		func() (err error) { r.Expect, err = d.DecodeBytes(); return },
		func() (err error) { r.Holder, err = d.DecodeString(); return },
		func() (err error) { r.Proc, err = d.DecodeString(); return },
		func() (err error) { r.ID, err = d.DecodeString(); return },
	)
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
				return encodeAll(e, 8,
					func() error { return e.EncodeString(m.Map) },
					func() error { return e.EncodeUint(uint64(m.Kind)) },
					func() error { return e.EncodeBytes(m.Key) },
					func() error { return e.EncodeInt(m.ExpireAt) },
					func() error { return e.EncodeUint(m.Seq) },
					func() error { return e.EncodeString(m.Holder) },
					func() error { return e.EncodeInt(int64(m.Count)) },
					func() error { return e.EncodeBool(m.Clean) },
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
				err := decodeAll(d, 8,
					func() (err error) { m.Map, err = d.DecodeString(); return },
					func() (err error) { kind, err = d.DecodeUint64(); m.Kind = mutKind(kind); return },
					func() (err error) { m.Key, err = d.DecodeBytes(); return },
					func() (err error) { m.ExpireAt, err = d.DecodeInt64(); return },
					func() (err error) { m.Seq, err = d.DecodeUint64(); return },
					func() (err error) { m.Holder, err = d.DecodeString(); return },
					func() (err error) { count, err = d.DecodeInt64(); m.Count = int(count); return },
					func() (err error) { m.Clean, err = d.DecodeBool(); return },
				)
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

// decodeAll reads an array of at least n fields; extra trailing fields are skipped.
func decodeAll(d *msgpack.Decoder, n int, fields ...func() error) error {
	l, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if l < n {
		return fmt.Errorf("header has %d fields, want %d", l, n)
	}
	for _, f := range fields {
		if err := f(); err != nil {
			return err
		}
	}
	for range l - n {
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

// marshalHeader is msgpack.Marshal with a pooled encoder and buffer.
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

// unmarshalHeader is msgpack.Unmarshal with a pooled decoder.
func unmarshalHeader(data []byte, v any) error {
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
