package dmap

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/msgpackcheck"
)

// Codec turns keys or values of type T into bytes and back. Implementations must be safe for
// concurrent use. Encode's result is owned by the caller; Decode must not keep b (copy what it
// keeps), because the buffer may be reused or belong to a stored record.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// DefaultCodec returns the codec a map uses when none is configured: []byte and string pass
// through unchanged (no re-encoding, so co-keyed string keys hash alike in every map), every other
// type is encoded with msgpack/v5.
func DefaultCodec[T any]() Codec[T] {
	var zero T
	switch any(zero).(type) {
	case []byte:
		return any(bytesCodec{}).(Codec[T])
	case string:
		return any(stringCodec{}).(Codec[T])
	}
	return MsgpackCodec[T]{}
}

// MsgpackCodec encodes T with vmihailenco/msgpack/v5.
type MsgpackCodec[T any] struct{}

// Encode implements Codec.
func (MsgpackCodec[T]) Encode(v T) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %T: %v", ErrCodec, v, err)
	}
	return b, nil
}

// Decode implements Codec.
func (MsgpackCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := msgpackcheck.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%w: decode %T: %v", ErrCodec, v, err)
	}
	return v, nil
}

type bytesCodec struct{}

// Encode copies, so that the caller may reuse v once Put returns.
func (bytesCodec) Encode(v []byte) ([]byte, error) { return append([]byte(nil), v...), nil }

// Decode copies, so that a caller may modify what Get returned without touching the stored record.
func (bytesCodec) Decode(b []byte) ([]byte, error) { return append([]byte(nil), b...), nil }

type stringCodec struct{}

func (stringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }
func (stringCodec) Decode(b []byte) (string, error) { return string(b), nil }
