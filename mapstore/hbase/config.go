package hbase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/user"
	"time"
)

// Defaults filled in by Config.WithDefaults.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultOpTimeout        = 60 * time.Second
	DefaultRetryInitial     = 20 * time.Millisecond
	DefaultRetryMax         = 2 * time.Second
	DefaultMaxRequestBytes  = 4 << 20 // 4 MiB
	DefaultMaxInFlightBytes = 8 << 20 // 8 MiB
	DefaultScanCaching      = 256
)

// Config configures a Client. Zero fields take the defaults above (WithDefaults); Addrs is
// required.
type Config struct {
	// Addrs are "host:port" addresses of HBase masters (or any server of the connection
	// registry; 16000 is the master's default RPC port). The client asks the first that answers
	// where hbase:meta is (ClientMetaService, HBase 2.5+): no ZooKeeper is needed.
	Addrs []string
	// User is the user name sent with simple authentication. Default: the process's user name,
	// or "gridmap" if it cannot be found.
	User string
	// DialTimeout bounds connecting to one server. Default 5s.
	DialTimeout time.Duration
	// OpTimeout bounds one operation, retries included, when the caller's context has no
	// deadline (a context with one is obeyed as it is). Default 60s.
	OpTimeout time.Duration
	// RetryInitial is the back-off after the first retryable failure of an operation (a region
	// that moved, a busy or restarting server, a broken connection); it doubles per further
	// failure up to RetryMax. Defaults 20ms and 2s.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// MaxRequestBytes bounds the keys and values of one multi request to a region server: a
	// batch larger than that is sent as several requests (each at least one action). It must
	// stay below the servers' hbase.ipc.max.request.size (256 MiB by default). Default 4 MiB:
	// small requests keep each call short and spread a batch over the server's handlers, in
	// flight together on the one connection.
	MaxRequestBytes int64
	// MaxInFlightBytes bounds the bytes of the requests (multi requests and single puts and
	// deletes) this client has in flight to one region server: a request waits until its bytes
	// fit beside those in flight, and one larger than the bound goes alone. A region server
	// holds every request it has read in its heap until a handler has applied it, blocks writes
	// while its memstores are full, and meanwhile prints each running request as protobuf text
	// into every report to the master (about 3 bytes of string per byte of a binary dump;
	// HBASE-30092): without this bound a write-behind backlog of multi-megabyte dumps (every
	// partition flushing at once) lands on the server at once, and a 1 GB heap ran out of
	// memory under the Socorro demo's 2 reports/s. Keep the clients' sum well under the
	// servers' hbase.ipc.server.max.callqueue.size (1 GiB by default, 128 MiB in .ci/hbase.sh).
	// Default 8 MiB: two requests of MaxRequestBytes at a time per server and client (the cost in
	// throughput is in docs/stores.md).
	MaxInFlightBytes int64
	// Dial, if set, opens every TCP connection to a server (a proxy, a tunnel, or a test that
	// cuts the network). nil: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives retries and re-locations at Debug level. nil discards.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.User == "" {
		c.User = "gridmap"
		if u, err := user.Current(); err == nil && u.Username != "" {
			c.User = u.Username
		}
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (meant after WithDefaults) in one error wrapping
// ErrInvalidConfig, or nil.
func (c Config) Validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("no master address: Addrs is empty"))
	}
	for _, a := range c.Addrs {
		if a == "" {
			errs = append(errs, errors.New("an address of Addrs is empty"))
		}
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("DialTimeout %v is not positive", c.DialTimeout))
	}
	if c.OpTimeout <= 0 {
		errs = append(errs, fmt.Errorf("OpTimeout %v is not positive", c.OpTimeout))
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("RetryInitial %v and RetryMax %v: want 0 < RetryInitial <= RetryMax", c.RetryInitial, c.RetryMax))
	}
	if c.MaxRequestBytes <= 0 {
		errs = append(errs, fmt.Errorf("MaxRequestBytes %d is not positive", c.MaxRequestBytes))
	}
	if c.MaxInFlightBytes <= 0 {
		errs = append(errs, fmt.Errorf("MaxInFlightBytes %d is not positive", c.MaxInFlightBytes))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}
