// Package memberhook lets package gridmaptest do to a *gridmap.Member what package gridmap
// keeps unexported: crash it, and start it on in-memory networks. Both are a test's tools, not
// an application's.
//
// Package gridmap sets the hooks in its init and nothing changes them afterwards, so they are
// constants in practice, not shared mutable state: they are variables only because gridmap
// imports this package, and this package cannot import gridmap.
package memberhook

import (
	"context"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/internal/transport"
)

// Kill stops a *gridmap.Member at once, as a crash would: no hand-off of its partitions, no
// gossip leave, its write-behind queues not flushed. The others notice its death as after a
// kill -9 and promote its backups. Set by package gridmap; panics for any other type.
var Kill func(member any)

// Start is gridmap.Start(ctx, cfg) for a member whose every connection goes through nets
// instead of sockets: cfg is a gridmap.Config, whose BindAddr and GossipBindAddr name
// addresses in nets (IP host:port; port 0 picks a free one), and the result a *gridmap.Member
// (nil on error). Set by package gridmap.
var Start func(ctx context.Context, cfg any, nets *Networks) (member any, err error)

// Networks are the in-memory networks members started by Start share: one for member-to-member
// traffic and raft, one for gossip. Members on different Networks cannot reach each other.
type Networks struct {
	Transport *transport.MemNetwork
	Gossip    *membership.MemNetwork
}

// NewNetworks returns empty networks.
func NewNetworks() *Networks {
	return &Networks{Transport: transport.NewMemNetwork(), Gossip: membership.NewMemNetwork()}
}
