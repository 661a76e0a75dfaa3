package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxFrameSize = 64 << 20
	DefaultConnsPerPeer = 1
	// DefaultBulkConnsPerPeer is the default number of bulk-lane connections per peer.
	DefaultBulkConnsPerPeer = 2
	DefaultDialTimeout      = 5 * time.Second
	DefaultMaxInFlight      = 1024
	// DefaultUserTimeout bounds how long sent data may stay unacknowledged before a connection
	// is closed (TCP_USER_TIMEOUT).
	DefaultUserTimeout = 5 * time.Second
	// DefaultQueueSize is the default bound of each connection's outgoing
	// frame queue.
	DefaultQueueSize = 1024
)

// Config configures a Client or a Server. Zero fields take the defaults
// (WithDefaults); Validate checks the result, and NewClient and NewServer do
// both. Negative values are invalid.
type Config struct {
	// Stats, when set, counts the bytes written and the frames and bytes read by the
	// connections of the Server or Client made with this Config (one atomic add per write
	// system call and per frame read). A Server and a Client may share one. Default: nil,
	// not counted.
	Stats *Stats
	// MaxFrameSize is the largest accepted value of a frame's length field,
	// in bytes. Default 64 MiB; at most MaxFrameLimit.
	MaxFrameSize int
	// ConnsPerPeer is the number of connections a Client keeps per peer address for small
	// requests; calls are spread over them round-robin. Default 1: with one connection,
	// concurrent calls share system calls (frames sent together are written together), which
	// measured ~10% more 256-byte writes per second than 2 connections on a 2-core machine.
	ConnsPerPeer int
	// BulkConnsPerPeer is the number of connections a Client keeps per peer address for
	// requests of at least 64 KiB (the bulk lane, dialed on first use), so that small requests
	// do not wait behind large bodies. Default 2: large bodies are written one frame at a time
	// per connection, and two keep loopback busier.
	BulkConnsPerPeer int
	// DialTimeout bounds dialing a peer (Client and raft layer). Default 5s.
	DialTimeout time.Duration
	// MaxInFlight is the number of requests a Server handles concurrently per
	// connection; when reached the server stops reading that connection until
	// one finishes. Default 1024.
	MaxInFlight int
	// QueueSize bounds each connection's queue of frames waiting for the
	// writer goroutine; a caller finding it full blocks until there is room or
	// its context ends. Default 1024.
	QueueSize int
	// UserTimeout closes a connection whose sent data stays unacknowledged this long (Linux
	// TCP_USER_TIMEOUT), so that a peer lost to a network partition is redialled once the
	// network heals instead of hanging calls behind minutes of retransmissions. Default 5s.
	UserTimeout time.Duration
	// ErrorCode maps a handler error to the code sent to the caller. A
	// *RemoteError returned by a handler keeps its own code. Nil: every other
	// error is sent as CodeInternal.
	ErrorCode func(error) uint16
	// TLS, when set, makes every connection (gridmap frames and raft, dialed and accepted)
	// mutual TLS 1.3; a peer without a certificate signed by the cluster's CA gets no byte of
	// an answer. Nil (the default): plain TCP.
	TLS *TLS
	// Secret, when set, makes every connection start with a handshake in which both sides
	// prove they know it (HMAC-SHA256 over fresh nonces, see auth.go), so that a process
	// without it can neither read nor write; with TLS, the handshake runs inside TLS. It
	// authenticates, it does not encrypt. Nil (the default): no handshake.
	Secret []byte
	// Logger receives connection-level events. Nil discards them.
	Logger *slog.Logger
	// Dial, when not nil, connects to a peer's address instead of a TCP dial: the Client's
	// connections and the raft layer's (see Server.RaftLayer) both use it. MemNetwork.Dial
	// runs members of one process without sockets on a network. Nil: TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.UserTimeout == 0 {
		c.UserTimeout = DefaultUserTimeout
	}
	if c.ConnsPerPeer == 0 {
		c.ConnsPerPeer = DefaultConnsPerPeer
	}
	if c.BulkConnsPerPeer == 0 {
		c.BulkConnsPerPeer = DefaultBulkConnsPerPeer
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c.WithDefaults() in one error wrapping
// ErrInvalidConfig: zero fields are valid (they take defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.MaxFrameSize < 0 || c.MaxFrameSize > MaxFrameLimit {
		errs = append(errs, fmt.Errorf("MaxFrameSize %d not in [0, %d]", c.MaxFrameSize, MaxFrameLimit))
	} else if c.MaxFrameSize < MinFrameLength+2 {
		errs = append(errs, fmt.Errorf("MaxFrameSize %d below %d", c.MaxFrameSize, MinFrameLength+2))
	}
	if c.ConnsPerPeer < 0 {
		errs = append(errs, fmt.Errorf("ConnsPerPeer %d is negative", c.ConnsPerPeer))
	}
	if c.BulkConnsPerPeer < 0 {
		errs = append(errs, fmt.Errorf("BulkConnsPerPeer %d is negative", c.BulkConnsPerPeer))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("DialTimeout %v is negative", c.DialTimeout))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("MaxInFlight %d is negative", c.MaxInFlight))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("QueueSize %d is negative", c.QueueSize))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}
