package rpc

import (
	"errors"
	"strings"
)

// Errors of this package. Check them with errors.Is.
var (
	// ErrMalformed: a frame or message from the server could not be decoded, or broke the
	// protocol (an unknown call ID, a cell block nobody asked for, a length past the frame).
	ErrMalformed = errors.New("hbase rpc: malformed response")
	// ErrConnection: the connection failed or was closed; calls in flight on it fail with it.
	ErrConnection = errors.New("hbase rpc: connection failed")
	// ErrFrameTooLarge: a frame announced more bytes than Options.MaxFrame allows.
	ErrFrameTooLarge = errors.New("hbase rpc: frame too large")
)

// RemoteError is an exception the server answered a call with.
type RemoteError struct {
	// Class is the Java class name of the exception, for example
	// "org.apache.hadoop.hbase.NotServingRegionException".
	Class string
	// Message is the first line of the server's stack trace (it starts with the class name and
	// the exception's message).
	Message string
	// DoNotRetry is set when the server says retrying cannot help.
	DoNotRetry bool
	// Host and Port are set by exceptions that name another server (a region that moved).
	Host string
	Port int32
}

func (e *RemoteError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Class
	}
	return "hbase: " + msg
}

// ShortClass returns the class name without its package.
func (e *RemoteError) ShortClass() string {
	if i := strings.LastIndexByte(e.Class, '.'); i >= 0 {
		return e.Class[i+1:]
	}
	return e.Class
}

// firstLine returns s up to its first line break, at most 1,000 bytes: a stack trace's first
// line holds the class and message; the frames only bloat logs.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 1000 {
		s = s[:1000] + "..."
	}
	return s
}
