package transport

import (
	"syscall"

	"context"
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by calls on a Client or Server that has been closed.
	ErrClosed = errors.New("transport: closed")
	// ErrConnClosed wraps the cause when a connection breaks while a call is
	// pending on it. The request may or may not have been executed by the peer.
	// The next call to that peer dials a new connection.
	ErrConnClosed = errors.New("transport: connection closed")
	// ErrRefused is wrapped, with ErrConnClosed, by a dial of the in-memory network to an
	// address where nothing listens, as a TCP dial wraps syscall.ECONNREFUSED: see Refused.
	ErrRefused = errors.New("transport: connection refused")
	// ErrCallTimeout is returned when the timeout of a CallTimeout or CallAsync passes before
	// the response arrives. It wraps context.DeadlineExceeded. The peer may or may not have
	// executed the request.
	ErrCallTimeout = fmt.Errorf("transport: call timed out: %w", context.DeadlineExceeded)
	// ErrFrameTooLarge is returned when a frame exceeds Config.MaxFrameSize,
	// on the client before anything is sent.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrMalformedFrame is returned for a frame that violates the frame format.
	ErrMalformedFrame = errors.New("transport: malformed frame")
	// ErrTLSHandshake wraps the cause when a TLS handshake fails: the peer's certificate is not
	// signed by the cluster's CA, does not name the address dialed, has expired, or the peer
	// refused this member's certificate or does not speak TLS.
	ErrTLSHandshake = errors.New("transport: TLS handshake failed")
	// ErrUnauthorized wraps the cause when the shared-secret handshake (Config.Secret) fails:
	// the peer does not know the secret, or does not use one.
	ErrUnauthorized = errors.New("transport: unauthorized")
	// ErrInvalidConfig wraps every problem Config.Validate finds.
	ErrInvalidConfig = errors.New("transport: invalid config")
)

// Error codes used by the transport itself. Application codes start at 100.
const (
	CodeInternal      uint16 = 1 // a handler failed and Config.ErrorCode is nil
	CodeUnknownType   uint16 = 2 // no handler is registered for the message type
	CodeMalformed     uint16 = 3 // the request frame violates the frame format
	CodeFrameTooLarge uint16 = 4 // the request frame exceeds the server's MaxFrameSize
)

// RemoteError is an error response from the peer: a handler error (or a
// transport-level refusal) as a code and a message. Client.Call returns it as
// *RemoteError; a handler may also return one to choose its code.
type RemoteError struct {
	Code    uint16
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("transport: remote error %d: %s", e.Code, e.Message)
}

// FrameError describes a frame that ReadFrame refused. It unwraps to
// ErrFrameTooLarge or ErrMalformedFrame.
type FrameError struct {
	Err   error   // ErrFrameTooLarge or ErrMalformedFrame
	Kind  Kind    // valid if HasID
	Type  MsgType // valid if HasID
	ID    uint64  // valid if HasID
	HasID bool    // the kind, type and request id could be read
	// Resync reports that the whole frame was consumed, so the reader is
	// positioned at the start of the next frame and the stream can go on.
	Resync bool
	Detail string
}

func (e *FrameError) Error() string {
	if e.HasID {
		return fmt.Sprintf("%v: %s (request id %d, type %d)", e.Err, e.Detail, e.ID, e.Type)
	}
	return fmt.Sprintf("%v: %s", e.Err, e.Detail)
}

func (e *FrameError) Unwrap() error { return e.Err }

// Refused reports whether err says that the peer's host answered but nothing listens at the
// address (TCP's connection refused, or ErrRefused on the in-memory network): the process that
// listened there is gone, unlike a timeout, which a stopped process or a cut network also give.
func Refused(err error) bool {
	return errors.Is(err, ErrRefused) || errors.Is(err, syscall.ECONNREFUSED)
}
