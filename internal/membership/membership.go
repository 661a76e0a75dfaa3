// Package membership wraps hashicorp/memberlist: it gossips each member's
// metadata (member ID, transport address, whether it is part of a raft
// cluster, whether it is leaving), joins through discovery seeds, and keeps
// an exact, locally timed view of who is alive, who left and who died.
//
// Memberlist calls the List's delegates on its own goroutines while holding
// its locks; the List only records what happened there and never calls back
// into memberlist from them.
package membership

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/discovery"
	"github.com/gridmap/gridmap/internal/msgpackcheck"
)

// Meta is the metadata every member gossips about itself.
type Meta struct {
	// ID is the member ID (also the memberlist node name).
	ID string `msgpack:"i"`
	// TransportAddr is the member's transport (and raft) address.
	TransportAddr string `msgpack:"t"`
	// InRaft reports that the member belongs to a raft cluster (it
	// bootstrapped one or received a configuration from a leader). A member
	// that sees another one InRaft never bootstraps.
	InRaft bool `msgpack:"r,omitempty"`
	// Leaving reports that the member is leaving gracefully.
	Leaving bool `msgpack:"l,omitempty"`
	// Cluster and Proof are the member's admission credentials: its cluster
	// name and proof of the join secret (see Admission). Empty without one.
	Cluster string `msgpack:"c,omitempty"`
	Proof   string `msgpack:"p,omitempty"`
}

// State is what this member last heard about another.
type State int

// States of a member.
const (
	Alive State = iota // answering probes (or suspected, not yet declared dead)
	Left               // gone after announcing a graceful leave (Meta.Leaving)
	Dead               // declared dead by failure detection
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Left:
		return "left"
	case Dead:
		return "dead"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Member is one member as seen from here.
type Member struct {
	Meta
	// GossipAddr is the member's memberlist address host:port.
	GossipAddr string
	State      State
	// Since is when this member entered State, read from the local clock
	// (it carries a monotonic reading: compare it only with time.Now of this
	// process).
	Since time.Time
}

// EventKind says what changed.
type EventKind int

// Event kinds.
const (
	Join   EventKind = iota // a member became alive (also this member, at start)
	Leave                   // a member left or died (see Member.State)
	Update                  // a member's metadata changed
)

func (k EventKind) String() string {
	switch k {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Update:
		return "update"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one change in the membership.
type Event struct {
	Kind   EventKind
	Member Member
}

// List is this member's view of the membership. Its methods are safe for
// concurrent use.
type List struct {
	cfg    Config
	logger *slog.Logger
	ml     *memberlist.Memberlist

	metaMu   sync.Mutex
	meta     Meta
	metaEnc  []byte
	gossipHP string

	mu      sync.Mutex
	members map[string]*Member
	closed  bool

	events  chan Event
	changed chan struct{}
	dropped atomic.Uint64

	refused refusals            // admission refusals (see Admission)
	keyring *memberlist.Keyring // nil: gossip in plaintext
}

// New starts memberlist listening on cfg.BindAddr. The member knows only
// itself until Join (or another member joining it).
func New(cfg Config) (*List, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &List{
		cfg:     cfg,
		logger:  cfg.Logger,
		members: make(map[string]*Member),
		events:  make(chan Event, cfg.EventBuffer),
		changed: make(chan struct{}, 1),
		meta:    Meta{ID: cfg.ID, TransportAddr: cfg.TransportAddr},
	}
	if a := cfg.Admission; a != nil {
		l.meta.Cluster, l.meta.Proof = a.ClusterName, string(a.proof(cfg.ID, cfg.TransportAddr))
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if err := l.encodeMeta(); err != nil {
		return nil, err
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.ID
	host, port, _ := splitHostPort(cfg.BindAddr)
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", 0
	if cfg.AdvertiseAddr != "" {
		ah, ap, _ := splitHostPort(cfg.AdvertiseAddr)
		ips, err := net.LookupIP(ah)
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("%w: AdvertiseAddr %q does not resolve: %v", ErrConfig, cfg.AdvertiseAddr, err)
		}
		if ap == 0 {
			ap = port
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ips[0].String(), ap
	}
	t := cfg.Timings
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.IndirectChecks = t.IndirectChecks
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	mc.GossipInterval = t.GossipInterval
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	// Gossip messages are small: LZW saves them little and allocated 64 KiB per message sent,
	// a GC cost every member paid all the time. Members still read compressed messages.
	mc.EnableCompression = false
	mc.Delegate = (*delegate)(l)
	mc.Events = (*eventDelegate)(l)
	mc.Logger = log.New(LogWriter(cfg.Logger, "memberlist", false), "", 0)
	if cfg.Admission != nil {
		mc.Alive = (*aliveDelegate)(l)
		mc.Merge = (*mergeDelegate)(l)
	}
	if len(cfg.GossipKeys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.GossipKeys, cfg.GossipKeys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: GossipKeys: %w", ErrConfig, err)
		}
		// Every packet and stream is encrypted and authenticated, in and out (memberlist's
		// GossipVerifyIncoming/Outgoing, true by default): a member without a key of the ring
		// can neither read the gossip nor be heard.
		mc.Keyring, l.keyring = kr, kr
	}

	if cfg.Network != nil {
		t, err := cfg.Network.bind(mc.BindAddr, port)
		if err != nil {
			return nil, err
		}
		mc.Transport = t
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		if mc.Transport != nil {
			mc.Transport.Shutdown()
		}
		return nil, fmt.Errorf("membership: start memberlist: %w", err)
	}
	l.ml = ml
	ln := ml.LocalNode()
	l.gossipHP = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	return l, nil
}

// GossipAddr is this member's advertised gossip address host:port.
func (l *List) GossipAddr() string { return l.gossipHP }

// LocalMeta returns this member's current metadata.
func (l *List) LocalMeta() Meta {
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	return l.meta
}

// SetMeta changes this member's metadata with f (ID and TransportAddr are
// kept) and gossips the change, waiting at most Timings.TCPTimeout for the
// broadcast. It must not be called from an Events consumer that memberlist
// is blocked on (the List never blocks memberlist, so any goroutine is fine).
func (l *List) SetMeta(f func(*Meta)) error {
	l.metaMu.Lock()
	old := l.meta
	f(&l.meta)
	l.meta.ID, l.meta.TransportAddr = old.ID, old.TransportAddr
	l.meta.Cluster, l.meta.Proof = old.Cluster, old.Proof
	if l.meta == old {
		l.metaMu.Unlock()
		return nil
	}
	if err := l.encodeMetaLocked(); err != nil {
		l.meta = old
		l.metaMu.Unlock()
		return err
	}
	l.metaMu.Unlock()
	if l.isClosed() {
		return ErrClosed
	}
	if err := l.ml.UpdateNode(l.cfg.Timings.TCPTimeout); err != nil {
		return fmt.Errorf("membership: gossip metadata: %w", err)
	}
	return nil
}

func (l *List) encodeMeta() error {
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	return l.encodeMetaLocked()
}

func (l *List) encodeMetaLocked() error {
	b, err := msgpack.Marshal(&l.meta)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMeta, err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMeta, len(b), memberlist.MetaMaxSize)
	}
	l.metaEnc = b
	return nil
}

// TryJoin asks d for seeds and contacts each, except this member's own
// address (see isSelf) and empty strings, once. It returns how many seeds answered. It returns ErrNoSeeds
// when there is nobody else to ask, an error wrapping ErrRefused when the
// seeds that answered failed the admission check (Config.Admission), and an
// error wrapping ErrJoin when nobody answered. memberlist's join is not cancellable: a call may outlive
// ctx by up to Timings.TCPTimeout per seed.
func (l *List) TryJoin(ctx context.Context, d discovery.Discovery) (int, error) {
	if l.isClosed() {
		return 0, ErrClosed
	}
	if d == nil {
		return 0, ErrNoSeeds
	}
	seeds, err := d.Seeds(ctx)
	if err != nil {
		return 0, err
	}
	seeds = slices.DeleteFunc(seeds, func(s string) bool { return l.isSelf(ctx, s) })
	if len(seeds) == 0 {
		return 0, ErrNoSeeds
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.refused.take()
	n, err := l.ml.Join(seeds)
	if n == 0 {
		if r := l.refused.take(); r != nil {
			return 0, fmt.Errorf("%w: %w", ErrRefused, r)
		}
		if keyMismatch(err) {
			return 0, fmt.Errorf("%w: gossip keys do not match: %w", ErrRefused, err)
		}
		return 0, fmt.Errorf("%w: %w", ErrJoin, err)
	}
	return n, nil
}

// isSelf reports whether seed is this member's own gossip address, as a
// discovery source that lists every member (a DNS name of all pods, a static
// list shared by all members) yields it: empty, its advertised or bind
// address, or its gossip port on its advertised or bind IP, or, when it binds
// every address, on a loopback address or an address of one of this
// machine's interfaces. A host name counts by the addresses it resolves to; a
// seed that does not resolve is not this member.
func (l *List) isSelf(ctx context.Context, seed string) bool {
	if seed == "" || seed == l.gossipHP || seed == l.cfg.BindAddr {
		return true
	}
	host, port, err := splitHostPort(seed)
	if err != nil {
		return false
	}
	_, self, _ := splitHostPort(l.gossipHP)
	if port != self {
		return false
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else if addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host); err == nil {
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	adv, _, _ := splitHostPort(l.gossipHP)
	bh, _, _ := splitHostPort(l.cfg.BindAddr)
	bindIP := net.ParseIP(bh)
	wildcard := bh == "" || (bindIP != nil && bindIP.IsUnspecified())
	var local []net.Addr
	if wildcard {
		local, _ = net.InterfaceAddrs()
	}
	for _, ip := range ips {
		switch {
		case ip.Equal(net.ParseIP(adv)), bindIP != nil && ip.Equal(bindIP):
			return true
		case !wildcard:
			continue
		case ip.IsLoopback(), ip.IsUnspecified():
			return true
		}
		for _, a := range local {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// Join calls TryJoin every interval until this member sees at least one
// other alive member (because it joined one, or one joined it) or ctx ends.
func (l *List) Join(ctx context.Context, d discovery.Discovery, interval time.Duration) error {
	for {
		if l.NumAlive() > 1 {
			return nil
		}
		if _, err := l.TryJoin(ctx, d); err == nil && l.NumAlive() > 1 {
			return nil
		} else if err != nil {
			l.logger.Debug("membership: join attempt", "err", err)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-l.changed:
			t.Stop()
			l.signal() // keep the notification for other consumers
		case <-t.C:
		}
	}
}

// Members returns every member this one knows (itself included), sorted by
// ID, alive ones and those that left or died within RetainGone. The caller
// owns the slice.
func (l *List) Members() []Member {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Member, 0, len(l.members))
	for _, m := range l.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Alive returns the alive members (itself included), sorted by ID.
func (l *List) Alive() []Member {
	return slices.DeleteFunc(l.Members(), func(m Member) bool { return m.State != Alive })
}

// NumAlive is the number of alive members, itself included.
func (l *List) NumAlive() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.members {
		if m.State == Alive {
			n++
		}
	}
	return n
}

// Events delivers membership changes in the order memberlist reports them.
// The channel is bounded (Config.EventBuffer); when the consumer falls
// behind, events are dropped (see Dropped) and Members remains the truth.
// It is never closed.
func (l *List) Events() <-chan Event { return l.events }

// Dropped is the number of events dropped because Events was full.
func (l *List) Dropped() uint64 { return l.dropped.Load() }

// Changed receives a value after one or more changes (coalesced: one
// pending notification at most). Meant for a single consumer that then reads
// Members.
func (l *List) Changed() <-chan struct{} { return l.changed }

// Leave marks this member Leaving in its metadata, announces a graceful
// leave, waits up to timeout for it to be gossiped, and shuts memberlist
// down. The others then report the member as Left rather than Dead.
func (l *List) Leave(timeout time.Duration) error {
	if l.isClosed() {
		return ErrClosed
	}
	if err := l.SetMeta(func(m *Meta) { m.Leaving = true }); err != nil {
		l.logger.Warn("membership: could not announce leaving", "err", err)
	}
	err := l.ml.Leave(timeout)
	if serr := l.Shutdown(); err == nil && serr != nil && serr != ErrClosed {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Shutdown stops memberlist abruptly, without telling anyone: the others
// will declare this member dead. Calling it again returns ErrClosed.
func (l *List) Shutdown() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.mu.Unlock()
	return l.ml.Shutdown()
}

func (l *List) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *List) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// record applies a memberlist notification. Called by memberlist with its
// node lock held: it must not call memberlist and must not block.
func (l *List) record(kind EventKind, n *memberlist.Node) {
	var meta Meta
	if err := msgpackcheck.Unmarshal(n.Meta, &meta); err != nil || meta.ID == "" {
		l.logger.Warn("membership: ignoring node with unreadable metadata", "node", n.Name, "err", err)
		return
	}
	now := time.Now()
	l.mu.Lock()
	m, ok := l.members[n.Name]
	if !ok {
		m = &Member{}
		l.members[n.Name] = m
	}
	m.Meta = meta
	m.GossipAddr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	state := Alive
	if kind == Leave {
		// memberlist does not tell a graceful leave from a death (Node.State
		// is not maintained), so a member announces its leave in its
		// metadata first (see List.Leave).
		state = Dead
		if meta.Leaving {
			state = Left
		}
	}
	if !ok || m.State != state {
		m.State, m.Since = state, now
	}
	ev := Event{Kind: kind, Member: *m}
	for id, o := range l.members {
		if o.State != Alive && now.Sub(o.Since) > l.cfg.RetainGone {
			delete(l.members, id)
		}
	}
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return
	}
	select {
	case l.events <- ev:
	default:
		l.dropped.Add(1)
	}
	l.signal()
}

type delegate List

func (d *delegate) NodeMeta(limit int) []byte {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	return d.metaEnc
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

type eventDelegate List

func (e *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*List)(e).record(Join, n) }
func (e *eventDelegate) NotifyLeave(n *memberlist.Node)  { (*List)(e).record(Leave, n) }
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*List)(e).record(Update, n) }
