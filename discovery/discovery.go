// Package discovery tells a starting member where to find the others: it
// yields the gossip addresses (host:port) of members that may already be
// running, the seeds a member joins through.
//
// A Discovery is consulted when a member starts and again, periodically, until
// the member has found its cluster, so a source whose answer grows over time
// (a Kubernetes headless service whose pods become ready one by one) works.
// The answer may include the asking member's own address; callers skip it.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
)

// Discovery yields seed addresses.
//
// Seeds is called from the member's control-plane goroutine, never
// concurrently for the same member, and may block until ctx ends. It returns
// gossip addresses as host:port; an empty answer with a nil error means "no
// other member known yet" (for example the very first member). The caller
// owns the returned slice.
type Discovery interface {
	Seeds(ctx context.Context) ([]string, error)
}

// Static is a fixed list of seed addresses.
type Static []string

// Seeds returns a copy of the list.
func (s Static) Seeds(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return slices.Clone([]string(s)), nil
}

// Func adapts a function to Discovery.
type Func func(ctx context.Context) ([]string, error)

// Seeds calls f.
func (f Func) Seeds(ctx context.Context) ([]string, error) { return f(ctx) }

// DNS yields every A and AAAA record of Name, each at Port: the shape of a
// Kubernetes headless service, whose name resolves to the address of every
// ready pod.
type DNS struct {
	// Name is the host name to resolve. Required.
	Name string
	// Port is the gossip port of every member. Required, 1..65535.
	Port int
	// Resolver resolves Name. nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// Seeds resolves Name. A name that does not exist (yet) is not an error: it
// yields no seeds, as a headless service with no ready pod does. Addresses
// are returned in the resolver's order with duplicates removed.
func (d DNS) Seeds(ctx context.Context) ([]string, error) {
	if d.Name == "" {
		return nil, ErrNoName
	}
	if d.Port <= 0 || d.Port > 65535 {
		return nil, fmt.Errorf("%w: %d", ErrBadPort, d.Port)
	}
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupIPAddr(ctx, d.Name)
	if err != nil {
		var dnsErr *net.DNSError
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrLookup, d.Name, err)
	}
	port := strconv.Itoa(d.Port)
	seen := make(map[string]bool, len(addrs))
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		hp := net.JoinHostPort(a.String(), port)
		if !seen[hp] {
			seen[hp] = true
			out = append(out, hp)
		}
	}
	return out, nil
}
