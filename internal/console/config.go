package console

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a console server.
type Config struct {
	// Addr is the HTTP host:port to serve on; port 0 picks a free port (Server.Addr tells
	// which). Required.
	Addr string
	// Token, when set, is the bearer token write actions (publish) require; without it the
	// console is read-only and writes are refused with 401. Empty (the default): every write is
	// refused with 403.
	Token string
	// Source gives the cluster's state. Required.
	Source Source
	// Gatherer is what /metrics serves. Default: nothing (404 on /metrics).
	Gatherer prometheus.Gatherer
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
}

// Validate reports every problem of c in one error wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("Addr is required"))
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("Addr %q: %v", c.Addr, err))
	}
	if c.Source == nil {
		errs = append(errs, errors.New("Source is required"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}
