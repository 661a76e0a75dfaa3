package transport

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// MsgType identifies a message; the application defines the values (0 is reserved).
type MsgType uint8

// Kind is a frame's kind.
type Kind uint8

// Frame kinds.
const (
	KindRequest  Kind = 0
	KindResponse Kind = 1
	KindError    Kind = 2
)

const (
	// PrefixSize is the fixed part of a frame: length, kind, type, id and
	// header length.
	PrefixSize = 4 + 1 + 1 + 8 + 4
	// MinFrameLength is the smallest valid value of the length field (a frame
	// with empty header and body).
	MinFrameLength = PrefixSize - 4
	// MaxFrameLimit is the largest MaxFrameSize the format can express.
	MaxFrameLimit = 1<<32 - 1
)

// Message is a request or a response as the application sees it.
//
// A received Message's slices belong to the receiver (the transport reuses them
// only when the receiver gives them back, see Recycle). A sent Message's slices
// are read by the transport until the frame is written, which may be after Call
// or the handler returned, so they must not be modified after being handed over.
type Message struct {
	Type   MsgType
	Header []byte
	Body   []byte
	// from is, on a request handed to an InlineRecycling handler (or to the TryServe
	// of an AsyncRecycling one), the connection whose reader read it and may read a
	// later request into its buffer (Recycle).
	from *serverConn
}

// Recycle gives the buffer holding the request m's Header and Body back to the
// connection that read it, which reads a later request into it: a request
// handled without keeping any of its bytes then costs no allocation. Only a
// handler registered with InlineRecycling (or the TryServe of one registered
// with AsyncRecycling) may call it, on the request it was given, before it
// returns, and only when nothing keeps a slice of the request (its response
// included): after Recycle, the bytes change. On any other Message it does
// nothing.
func (m Message) Recycle() {
	if m.from != nil {
		m.from.recycle(m)
	}
}

// Frame is one decoded frame.
type Frame struct {
	Kind   Kind
	Type   MsgType
	ID     uint64
	Header []byte
	Body   []byte
}

// Length returns the value of the frame's length field: the size of
// everything after it.
func (f *Frame) Length() int {
	return MinFrameLength + len(f.Header) + len(f.Body)
}

func putPrefix(b []byte, f *Frame) {
	_ = b[PrefixSize-1]
	binary.BigEndian.PutUint32(b[0:], uint32(f.Length()))
	b[4] = byte(f.Kind)
	b[5] = byte(f.Type)
	binary.BigEndian.PutUint64(b[6:], f.ID)
	binary.BigEndian.PutUint32(b[14:], uint32(len(f.Header)))
}

// AppendFrame appends the encoding of f to dst and returns the extended
// slice. The caller checks the size against its limit (see Frame.Length).
func AppendFrame(dst []byte, f Frame) []byte {
	n := len(dst)
	need := PrefixSize + len(f.Header) + len(f.Body)
	if cap(dst)-n < need {
		nd := make([]byte, n, n+need)
		copy(nd, dst)
		dst = nd
	}
	dst = dst[:n+PrefixSize]
	putPrefix(dst[n:], &f)
	dst = append(dst, f.Header...)
	return append(dst, f.Body...)
}

// WriteFrame writes f to w. If w is a net.Conn the prefix, header and body go
// out in one writev call without copying the body.
func WriteFrame(w io.Writer, f Frame) error {
	var p [PrefixSize]byte
	putPrefix(p[:], &f)
	bufs := net.Buffers{p[:], f.Header, f.Body}
	_, err := bufs.WriteTo(w)
	return err
}

// ReadFrame reads one frame from r. Frames whose length field exceeds
// maxSize or is too small, or whose header length runs past the frame, are
// refused with a *FrameError (unwrapping to ErrFrameTooLarge or
// ErrMalformedFrame) that says whether the request id could be read and
// whether the stream is still positioned at a frame boundary. Other errors
// come from r (io.EOF at a clean frame boundary, io.ErrUnexpectedEOF inside
// a frame).
//
// Header and Body of the returned frame share one allocation that belongs to
// the caller.
func ReadFrame(r *bufio.Reader, maxSize int) (Frame, error) {
	return readFrame(r, maxSize, nil)
}

// readFrame is ReadFrame with the buffer of the frame's header and body (rest
// bytes, rest > 0) from alloc(type, rest), or a new one when alloc is nil.
func readFrame(r *bufio.Reader, maxSize int, alloc func(MsgType, int) []byte) (Frame, error) {
	var f Frame
	p, err := r.Peek(4)
	if err != nil {
		if err == io.EOF && len(p) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return f, err
	}
	length := int64(binary.BigEndian.Uint32(p))
	if length < MinFrameLength {
		_, _ = r.Discard(4)
		return f, &FrameError{Err: ErrMalformedFrame, Detail: fmt.Sprintf("frame length %d below minimum %d", length, MinFrameLength)}
	}
	p, err = r.Peek(PrefixSize)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return f, err
	}
	f.Kind = Kind(p[4])
	f.Type = MsgType(p[5])
	f.ID = binary.BigEndian.Uint64(p[6:])
	hlen := int64(binary.BigEndian.Uint32(p[14:]))
	_, _ = r.Discard(PrefixSize)
	if length > int64(maxSize) {
		return f, &FrameError{Err: ErrFrameTooLarge, Kind: f.Kind, Type: f.Type, ID: f.ID, HasID: true,
			Detail: fmt.Sprintf("frame length %d exceeds limit %d", length, maxSize)}
	}
	rest := length - MinFrameLength
	if hlen > rest || f.Kind > KindError {
		if _, err := r.Discard(int(rest)); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return f, err
		}
		detail := fmt.Sprintf("header length %d exceeds frame remainder %d", hlen, rest)
		if f.Kind > KindError {
			detail = fmt.Sprintf("unknown frame kind %d", f.Kind)
		}
		return f, &FrameError{Err: ErrMalformedFrame, Kind: f.Kind, Type: f.Type, ID: f.ID, HasID: true, Resync: true, Detail: detail}
	}
	if rest > 0 {
		var buf []byte
		if alloc != nil {
			buf = alloc(f.Type, int(rest))
		} else {
			buf = make([]byte, rest)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return f, err
		}
		f.Header = buf[:hlen:hlen]
		f.Body = buf[hlen:]
	}
	return f, nil
}
