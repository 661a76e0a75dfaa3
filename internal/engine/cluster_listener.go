package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// Cluster-wide entry listeners.
//
// A registration is cluster state held by every member: the registering member (the
// registrant) keeps the authoritative list of its own registrations with a version, and pushes
// the whole list (msgListenerRegs) to every member its partition table names, again whenever
// the list changes and to every member that appears later (a joining member is named as a
// pending copy before it owns anything). A member replaces a registrant's list by a newer
// version, and drops it when the registrant leaves or dies (it has no address any more). A
// partition copy also carries every list its sender knows (msgSyncRegs) ahead of the hand-off:
// a joining member may take partitions over before a registrant's push reaches it.
//
// On an owner, the observer runs each registration's key filter and predicate (compiled on that
// member from the predicate's name and argument) on the publishing goroutine; accepted events go
// to the registrant's outbox: one bounded queue per destination member, drained in batches
// (msgEvents) by one goroutine per destination, so a partition's events arrive in order. When
// the outbox is full the event is dropped and counted per registration, and the count travels
// with the registration's next event (or alone once the outbox has drained). On the
// registrant, every listener is a registration of the member's listener.Dispatcher, attached
// rather than routed (listener.Dispatcher.Attach): its own bounded queue and goroutine, into
// which the received events are offered with the counts dropped upstream, so that the
// listener package's overflow accounting is the only one. The listener thus receives one
// Overflow notice per gap with the exact number of events missed, wherever they were dropped.

// Bounds of the event traffic to one destination member.
const (
	// eventOutboxSize is the number of events waiting for one destination member, all its
	// registrations together, beyond which further ones are dropped and counted.
	eventOutboxSize = 16384
	// maxEventBatch is the most events sent in one msgEvents message.
	maxEventBatch = 512
	// registryRetry is how often the registry is re-examined without a table change (retries of
	// failed pushes, registrants that have gone away).
	registryRetry = 250 * time.Millisecond
	// registryCallTimeout bounds one push of a registration list to one member.
	registryCallTimeout = 5 * time.Second
)

// remoteReg is a registration as an owner applies it.
type remoteReg struct {
	spec   regSpec
	member partition.MemberID
	filter func(listener.Event) bool // nil: every event
	// broken: the predicate is not registered on this member; its events are counted missed.
	broken bool
	local  *clusterListener // the registrant is this member: deliver without the network
	out    *outbox          // otherwise: the registrant's outbox
}

type memberRegs struct {
	version uint64
	regs    []*remoteReg
}

// clusterListeners is a member's share of the cluster-wide registrations.
type clusterListeners struct {
	mu       sync.Mutex
	byMember map[partition.MemberID]*memberRegs
	// index is the immutable routing table the write path reads: map name -> registrations.
	index atomic.Pointer[map[string][]*remoteReg]
	// own are this member's registrations (the registrant side).
	own        map[string]*clusterListener
	ownVersion uint64
	// acked is the newest version of own each member confirmed.
	acked    map[partition.MemberID]uint64
	progress chan struct{} // closed and replaced when acked changes
	kick     chan struct{} // capacity 1: own changed
	outboxes map[partition.MemberID]*outbox
	// sent counts the events (not notices) sent over the network, for tests and metrics.
	sent atomic.Uint64
}

func (c *clusterListeners) init() {
	c.byMember = make(map[partition.MemberID]*memberRegs)
	c.own = make(map[string]*clusterListener)
	c.acked = make(map[partition.MemberID]uint64)
	c.progress = make(chan struct{})
	c.kick = make(chan struct{}, 1)
	c.outboxes = make(map[partition.MemberID]*outbox)
}

func (c *clusterListeners) listening(name string) bool {
	idx := c.index.Load()
	return idx != nil && len((*idx)[name]) > 0
}

func (c *clusterListeners) any() bool {
	idx := c.index.Load()
	return idx != nil && len(*idx) > 0
}

// reindexLocked rebuilds the routing table. The caller holds mu.
func (c *clusterListeners) reindexLocked() {
	idx := make(map[string][]*remoteReg)
	for _, mr := range c.byMember {
		for _, r := range mr.regs {
			idx[r.spec.Map] = append(idx[r.spec.Map], r)
		}
	}
	c.index.Store(&idx)
}

func (c *clusterListeners) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.index.Store(nil)
	for _, o := range c.outboxes {
		o.close()
	}
	for _, cl := range c.own {
		cl.reg.Remove()
	}
}

// clusterListener is one of this member's cluster-wide registrations.
type clusterListener struct {
	spec    regSpec
	reg     *listener.Registration // delivers to the listener, from its bounded queue
	removed atomic.Bool
}

// AddClusterListener registers fn for the events of the map's entries on every member (see
// dmap.Map.AddEntryListener): lo is the raw form of the listener's options, with its compiled
// predicate; pred and arg name the predicate and its argument as every owner compiles them.
// It returns once every member of the cluster has the registration (ErrTimeout if ctx ends
// first; nothing is registered then).
func (m *Map) AddClusterListener(ctx context.Context, fn func(listener.Event), lo listener.Options, pred string, arg []byte) (ListenerReg, error) {
	s := m.s
	if s.closed() {
		return ListenerReg{}, ErrClosed
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return ListenerReg{}, fmt.Errorf("dmap: listener id: %w", err)
	}
	spec := regSpec{ID: string(s.self) + "/" + hex.EncodeToString(b[:]), Map: m.name, HasKey: lo.Key != nil, Key: lo.Key,
		Pred: pred, Arg: arg, Values: lo.IncludeValues}
	queue := lo.QueueSize
	if queue == 0 {
		queue = listener.DefaultQueueSize
	}
	name := m.name
	// The owners filtered the events and stripped their values as the listener asked: the
	// registration passes them on as they come.
	reg, err := s.events.local.Attach(name, listener.Func(func(ev listener.Event) {
		ev.Map = name
		fn(ev)
	}), listener.Options{QueueSize: queue, IncludeValues: true})
	if err != nil {
		if errors.Is(err, listener.ErrClosed) {
			return ListenerReg{}, ErrClosed
		}
		return ListenerReg{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	cl := &clusterListener{spec: spec, reg: reg}
	version := s.setOwnReg(cl, true)
	h := ListenerReg{
		Remove: func() {
			if cl.removed.CompareAndSwap(false, true) {
				cl.reg.Remove()
				s.setOwnReg(cl, false)
			}
		},
		Stats: reg.Stats,
	}
	if err := s.waitRegistered(ctx, version); err != nil {
		h.Remove()
		return ListenerReg{}, err
	}
	return h, nil
}

// setOwnReg adds or removes one of this member's registrations, installs the new list locally
// and asks the registry driver to push it. It returns the list's new version.
func (s *Service) setOwnReg(cl *clusterListener, add bool) uint64 {
	c := &s.events.cw
	c.mu.Lock()
	defer c.mu.Unlock()
	if add {
		c.own[cl.spec.ID] = cl
	} else {
		delete(c.own, cl.spec.ID)
	}
	c.ownVersion++
	regs := make([]*remoteReg, 0, len(c.own))
	for _, o := range c.own {
		r := &remoteReg{spec: o.spec, member: s.self, local: o}
		if o.spec.Pred != "" {
			r.filter, _ = s.CompilePredicate(o.spec.Pred, o.spec.Arg) // compiled once already: cannot fail
		}
		regs = append(regs, r)
	}
	c.byMember[s.self] = &memberRegs{version: c.ownVersion, regs: regs}
	c.reindexLocked()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return c.ownVersion
}

// ownList returns this member's registrations as they travel.
func (c *clusterListeners) ownList(self partition.MemberID) regsMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	msg := regsMsg{From: string(self), Version: c.ownVersion, Regs: make([]regSpec, 0, len(c.own))}
	for _, o := range c.own {
		msg.Regs = append(msg.Regs, o.spec)
	}
	return msg
}

// knownLists returns every registration list this member knows: its own and the other members'.
// A partition copy carries them (sendCopy), so that a member taking a partition over forwards
// its events even when a registrant's own push has not reached it yet.
func (c *clusterListeners) knownLists(self partition.MemberID) []regsMsg {
	lists := []regsMsg{c.ownList(self)}
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, mr := range c.byMember {
		if m == self {
			continue
		}
		msg := regsMsg{From: string(m), Version: mr.version, Regs: make([]regSpec, 0, len(mr.regs))}
		for _, r := range mr.regs {
			msg.Regs = append(msg.Regs, r.spec)
		}
		lists = append(lists, msg)
	}
	return lists
}

// waitRegistered waits until every live member of the latest table confirmed version (or a
// newer one) of this member's registrations.
func (s *Service) waitRegistered(ctx context.Context, version uint64) error {
	c := &s.events.cw
	for {
		t, changed := s.cluster.Watch()
		c.mu.Lock()
		progress := c.progress
		done := true
		for _, m := range t.Members() {
			if m == s.self {
				continue
			}
			if _, ok := s.cluster.MemberAddr(m); ok && c.acked[m] < version {
				done = false
			}
		}
		c.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-progress:
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: registering the listener with every member: %w", ErrTimeout, ctx.Err())
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
}

// runRegistry is the registry driver: it pushes this member's registrations to every member
// that has not confirmed the latest version, and drops the registrations and outboxes of
// members that have gone away.
func (s *Service) runRegistry() {
	defer s.wg.Done()
	c := &s.events.cw
	tick := time.NewTicker(registryRetry)
	defer tick.Stop()
	for {
		t, changed := s.cluster.Watch()
		s.pruneRegistry()
		msg := c.ownList(s.self)
		var todo []partition.MemberID
		c.mu.Lock()
		for _, m := range t.Members() {
			if m != s.self && msg.Version > 0 && c.acked[m] < msg.Version {
				todo = append(todo, m)
			}
		}
		c.mu.Unlock()
		if len(todo) > 0 {
			s.pushRegistry(todo, msg)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-changed:
		case <-c.kick:
		case <-tick.C:
		}
	}
}

// pushRegistry sends msg to the members todo in parallel and records their confirmations.
func (s *Service) pushRegistry(todo []partition.MemberID, msg regsMsg) {
	c := &s.events.cw
	h, err := encodeRegs(&msg)
	if err != nil {
		s.log.Error("encode listener registrations", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, m := range todo {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(s.ctx, registryCallTimeout)
			defer cancel()
			if err := s.sendBatch(ctx, m, msgListenerRegs, h, nil); err != nil {
				s.log.Debug("pushing listener registrations failed, will retry", "member", m, "err", err)
				return
			}
			c.mu.Lock()
			if msg.Version > c.acked[m] {
				c.acked[m] = msg.Version
				close(c.progress)
				c.progress = make(chan struct{})
			}
			c.mu.Unlock()
		})
	}
	wg.Wait()
}

// pruneRegistry drops what belongs to members that have left or died.
func (s *Service) pruneRegistry() {
	c := &s.events.cw
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for m := range c.byMember {
		if m == s.self {
			continue
		}
		if _, ok := s.cluster.MemberAddr(m); !ok {
			delete(c.byMember, m)
			changed = true
		}
	}
	for m, o := range c.outboxes {
		if _, ok := s.cluster.MemberAddr(m); !ok {
			o.close()
			delete(c.outboxes, m)
		}
	}
	for m := range c.acked {
		if _, ok := s.cluster.MemberAddr(m); !ok {
			delete(c.acked, m)
		}
	}
	if changed {
		c.reindexLocked()
	}
}

// handleListenerRegs installs a registrant's list of registrations.
func (s *Service) handleListenerRegs(ctx context.Context, msg transport.Message) (transport.Message, error) {
	rm, err := decodeRegs(msg.Header)
	if err != nil {
		return encodeResponse(opResponse{Status: statusBadRequest, Msg: "undecodable listener registrations"})
	}
	from := partition.MemberID(rm.From)
	if from == s.self || s.closed() {
		return encodeResponse(opResponse{})
	}
	if _, ok := s.cluster.MemberAddr(from); !ok {
		return encodeResponse(opResponse{}) // a late message of a member that has gone
	}
	c := &s.events.cw
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.byMember[from]; cur != nil && cur.version >= rm.Version {
		return encodeResponse(opResponse{})
	}
	o := c.outboxes[from]
	if o == nil {
		o = newOutbox(from, eventOutboxSize)
		o.mem = s.mem
		c.outboxes[from] = o
		s.wg.Add(1)
		go s.runOutbox(o)
	}
	regs := make([]*remoteReg, 0, len(rm.Regs))
	for _, spec := range rm.Regs {
		r := &remoteReg{spec: spec, member: from, out: o}
		if spec.Pred != "" {
			f, err := s.CompilePredicate(spec.Pred, spec.Arg)
			if err != nil {
				s.log.Error("cluster-wide listener's predicate unusable here: its events are counted missed", "listener", spec.ID, "err", err)
				r.broken = true
			}
			r.filter = f
		}
		regs = append(regs, r)
	}
	c.byMember[from] = &memberRegs{version: rm.Version, regs: regs}
	c.reindexLocked()
	return encodeResponse(opResponse{})
}

// forwardEvent hands an owner's event to the cluster-wide registrations that accept it. It runs
// on the publishing goroutine (see eventHub.publish) and never blocks.
func (s *Service) forwardEvent(ev *listener.Event) {
	idx := s.events.cw.index.Load()
	if idx == nil {
		return
	}
	for _, r := range (*idx)[ev.Map] {
		if r.spec.HasKey && !bytes.Equal(r.spec.Key, ev.Key) {
			continue
		}
		if r.broken {
			r.out.drop(r.spec.ID)
			continue
		}
		if r.filter != nil && !acceptEvent(r.filter, ev, s) {
			continue
		}
		if r.local != nil {
			e := *ev
			if !r.spec.Values {
				e.OldValue, e.NewValue = nil, nil
			}
			r.local.reg.Offer(e, 0)
			continue
		}
		we := wireEvent{Reg: r.spec.ID, Kind: ev.Kind, Key: ev.Key, Part: int32(ev.Partition), Member: string(ev.Member), Seq: ev.Seq}
		if r.spec.Values {
			we.Old, we.New = ev.OldValue, ev.NewValue
		}
		r.out.push(we)
	}
}

// acceptEvent runs a predicate; a panic rejects the event (it must not unwind the write path).
func acceptEvent(f func(listener.Event) bool, ev *listener.Event, s *Service) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			s.log.Error("panic in a cluster-wide listener's predicate", "map", ev.Map, "panic", p)
		}
	}()
	return f(*ev)
}

// runOutbox sends one destination's events in batches, in order, retrying a failed batch until
// it is delivered or the destination has gone.
func (s *Service) runOutbox(o *outbox) {
	defer s.wg.Done()
	var batch []wireEvent
	wait := 5 * time.Millisecond
	for {
		if batch == nil {
			batch = o.take(maxEventBatch)
		}
		if len(batch) == 0 {
			batch = nil
			select {
			case <-o.wake:
				continue
			case <-o.quit:
			case <-s.ctx.Done():
			}
			return
		}
		err := s.sendEvents(o.to, batch)
		if err == nil {
			for _, e := range batch {
				if e.Kind != listener.Overflow {
					s.events.cw.sent.Add(1)
				}
			}
			batch, wait = nil, 5*time.Millisecond
			continue
		}
		if _, ok := s.cluster.MemberAddr(o.to); !ok {
			return
		}
		s.log.Debug("sending events failed, retrying", "to", o.to, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-o.quit:
			timer.Stop()
			return
		case <-s.ctx.Done():
			timer.Stop()
			return
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func (s *Service) sendEvents(to partition.MemberID, batch []wireEvent) error {
	h, err := encodeEvents(&eventsMsg{From: string(s.self), Events: batch})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OperationTimeout)
	defer cancel()
	return s.sendBatch(ctx, to, msgEvents, h, nil)
}

// handleEvents delivers a batch of events to this member's cluster-wide listeners.
func (s *Service) handleEvents(ctx context.Context, msg transport.Message) (transport.Message, error) {
	em, err := decodeEvents(msg.Header)
	if err != nil {
		return encodeResponse(opResponse{Status: statusBadRequest, Msg: "undecodable events"})
	}
	c := &s.events.cw
	for _, we := range em.Events {
		c.mu.Lock()
		cl := c.own[we.Reg]
		c.mu.Unlock()
		if cl == nil {
			continue // removed meanwhile
		}
		ev := listener.Event{Map: cl.spec.Map, Kind: we.Kind, Key: we.Key, Partition: partition.ID(we.Part),
			Member: partition.MemberID(we.Member), Seq: we.Seq, OldValue: we.Old, NewValue: we.New}
		cl.reg.Offer(ev, we.Missed)
	}
	return encodeResponse(opResponse{})
}

// outbox is the bounded queue of events for one destination member. It is plain data behind a
// mutex; runOutbox drains it.
type outbox struct {
	to    partition.MemberID
	limit int

	// mem is the member's memory account (nil: no budget): it counts the events queued, like
	// those of local listeners' queues (bytes, outboxHeld each).
	mem *memAccount

	mu      sync.Mutex
	items   []wireEvent
	bytes   int64
	pending map[string]uint64 // per registration: events dropped since its last queued event
	closed  bool

	wake chan struct{} // capacity 1: items became non-empty
	quit chan struct{} // closed by close
}

func newOutbox(to partition.MemberID, limit int) *outbox {
	return &outbox{to: to, limit: limit, pending: make(map[string]uint64), wake: make(chan struct{}, 1), quit: make(chan struct{})}
}

// push queues e, or drops and counts it when the outbox is full. Never blocks.
func (o *outbox) push(e wireEvent) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	if len(o.items) >= o.limit {
		o.pending[e.Reg]++
		o.mu.Unlock()
		return
	}
	if n := o.pending[e.Reg]; n > 0 {
		e.Missed = n
		delete(o.pending, e.Reg)
	}
	o.items = append(o.items, e)
	if o.mem != nil {
		n := outboxHeld(&e)
		o.bytes += n
		o.mem.add(n)
	}
	o.mu.Unlock()
	o.signal()
}

// outboxHeld is the memory an event queued in an outbox accounts for.
func outboxHeld(e *wireEvent) int64 {
	return int64(unsafe.Sizeof(*e)) + int64(len(e.Key)+len(e.Old)+len(e.New))
}

// drop counts an event of registration reg as missed.
func (o *outbox) drop(reg string) {
	o.mu.Lock()
	if !o.closed {
		o.pending[reg]++
	}
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take removes and returns up to max events; when it empties the queue, the counts of events
// dropped since follow as notices.
func (o *outbox) take(max int) []wireEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(max, len(o.items))
	out := slices.Clone(o.items[:n])
	if o.mem != nil {
		var freed int64
		for i := range out {
			freed += outboxHeld(&out[i])
		}
		o.bytes -= freed
		o.mem.add(-freed)
	}
	clear(o.items[:n])
	o.items = o.items[n:]
	if len(o.items) == 0 {
		o.items = nil // let the backing array go
		for reg, missed := range o.pending {
			out = append(out, wireEvent{Reg: reg, Kind: listener.Overflow, Part: -1, Missed: missed})
		}
		clear(o.pending)
	}
	return out
}

func (o *outbox) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		o.items = nil
		o.mem.add(-o.bytes)
		o.bytes = 0
		close(o.quit)
	}
}
