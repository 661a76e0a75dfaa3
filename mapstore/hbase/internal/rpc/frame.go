package rpc

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
)

// The wire format (HBase's RPC.proto documents it):
//
//	connection: "HBas" version(0) auth(80 = simple), then a 4-byte big-endian length and a
//	            ConnectionHeader (not length-delimited); the server answers nothing if it
//	            accepts it.
//	request:    4-byte big-endian total length, varint-delimited RequestHeader, varint-delimited
//	            request message, optional cell block.
//	response:   4-byte big-endian total length, varint-delimited ResponseHeader, then (unless the
//	            header carries an exception) a varint-delimited response message, then an
//	            optional cell block whose length the header gives.

// preamble opens every connection: magic, RPC version 0, authentication SIMPLE (80).
var preamble = []byte{'H', 'B', 'a', 's', 0, 80}

// AppendConnectionHeader appends the preamble and the length-prefixed connection header.
func AppendConnectionHeader(b []byte, h *pb.ConnectionHeader) ([]byte, error) {
	b = append(b, preamble...)
	msg, err := proto.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("hbase rpc: encode connection header: %w", err)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	return append(b, msg...), nil
}

// AppendRequest appends one framed request: the header and the parameter message, each
// varint-delimited, behind the 4-byte total length.
func AppendRequest(b []byte, h *pb.RequestHeader, param proto.Message) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	var err error
	if b, err = appendDelimited(b, h); err != nil {
		return nil, err
	}
	if param != nil {
		if b, err = appendDelimited(b, param); err != nil {
			return nil, err
		}
	}
	n := len(b) - start - 4
	if uint64(n) > 1<<31-1 {
		return nil, fmt.Errorf("hbase rpc: request of %d bytes is too large", n)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

func appendDelimited(b []byte, m proto.Message) ([]byte, error) {
	opts := proto.MarshalOptions{}
	size := opts.Size(m)
	b = protowire.AppendVarint(b, uint64(size))
	b, err := opts.MarshalAppend(b, m)
	if err != nil {
		return nil, fmt.Errorf("hbase rpc: encode %T: %w", m, err)
	}
	return b, nil
}

// Response is one decoded response frame.
type Response struct {
	Header *pb.ResponseHeader
	// Body is the response message's bytes (decode it with proto.Unmarshal into the type the
	// method returns); nil when the header carries an exception.
	Body []byte
	// CellBlock holds the cell block that followed, if any.
	CellBlock []byte
}

// DecodeResponse splits one response frame (without its 4-byte length) into header, message
// and cell block. It checks every length against the frame; it never panics on any input.
func DecodeResponse(frame []byte) (Response, error) {
	hdrBytes, rest, err := delimited(frame)
	if err != nil {
		return Response{}, fmt.Errorf("%w: response header: %v", ErrMalformed, err)
	}
	h := &pb.ResponseHeader{}
	if err := proto.Unmarshal(hdrBytes, h); err != nil {
		return Response{}, fmt.Errorf("%w: response header: %v", ErrMalformed, err)
	}
	if h.CallId == nil {
		return Response{}, fmt.Errorf("%w: response header without call id", ErrMalformed)
	}
	r := Response{Header: h}
	if h.Exception != nil {
		// The server writes nothing after an exception header; tolerate (ignore) a trailer.
		return r, nil
	}
	body, rest, err := delimited(rest)
	if err != nil {
		return Response{}, fmt.Errorf("%w: response message of call %d: %v", ErrMalformed, h.GetCallId(), err)
	}
	r.Body = body
	want := 0
	if h.CellBlockMeta != nil {
		want = int(h.CellBlockMeta.GetLength())
	}
	if len(rest) != want {
		return Response{}, fmt.Errorf("%w: call %d: %d bytes after the message, header announces a cell block of %d",
			ErrMalformed, h.GetCallId(), len(rest), want)
	}
	if want > 0 {
		r.CellBlock = rest
	}
	return r, nil
}

// delimited reads a varint length and that many bytes.
func delimited(b []byte) (msg, rest []byte, err error) {
	n, k := protowire.ConsumeVarint(b)
	if k < 0 {
		return nil, nil, fmt.Errorf("bad length varint: %v", protowire.ParseError(k))
	}
	b = b[k:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("length %d past the %d bytes left", n, len(b))
	}
	return b[:n], b[n:], nil
}

// Err converts the exception of a response header into a *RemoteError (nil when there is none).
func (r Response) Err() error {
	ex := r.Header.GetException()
	if ex == nil {
		return nil
	}
	return &RemoteError{
		Class:      ex.GetExceptionClassName(),
		Message:    firstLine(ex.GetStackTrace()),
		DoNotRetry: ex.GetDoNotRetry(),
		Host:       ex.GetHostname(),
		Port:       ex.GetPort(),
	}
}
