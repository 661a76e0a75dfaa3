// Package control is gridmap's control plane: membership and failure
// detection (hashicorp/memberlist, through internal/membership) and the
// partition table, decided by one coordinator and committed through
// hashicorp/raft.
//
// Every member runs a Node. The raft leader is the coordinator: it adds
// members that memberlist reports to raft (voters up to Config.MaxVoters,
// the rest non-voters, promoted when a voter dies), keeps the replicated
// member directory (ID -> transport and gossip address), runs the planner
// (partition.Plan, partition.Complete) on every membership change, sync
// report and periodically, and commits each new table through raft. Every
// member receives every table through raft and learns of it with Watch.
//
// # Bootstrap
//
// A cluster is born once: a member bootstraps raft only when it sees
// ExpectMembers members (itself included) in memberlist, none of which is in
// a raft cluster yet, its view has stayed the same for
// Timings.BootstrapSettle, and it has the lowest ID of them. A member that
// sees only itself bootstraps only when Discovery names no member but itself
// (the first member of a new cluster) or Config.BootstrapWithoutSeeds is set:
// a member whose seeds do not answer keeps trying to join them (WaitReady
// keeps waiting) rather than founding a second cluster of its own. It bootstraps
// with the lowest MaxVoters of them as voters; the others are added by the
// leader. A member that sees a member in a raft cluster never bootstraps.
// When every member of a new cluster is started with ExpectMembers equal to
// the number started together, exactly one of them bootstraps. Starting more
// members at once than ExpectMembers says can, with unlucky timing, let two
// disjoint views each elect a bootstrapper (as with Consul's
// bootstrap-expect); the settle period makes it unlikely, not impossible.
//
// # Failures and partitions
//
// A member is treated as failed when memberlist declares it dead or when
// the leader's raft heartbeats to it fail for Timings.RaftContactTimeout
// (gossip gets through, raft does not); either way its partitions are
// reassigned only after Config.DeadWait. A member failed by raft is
// re-admitted after a backoff, as a non-voter on probation, and takes part
// again once it proved that raft reaches it. A raft voter is swapped for a
// healthy non-voter sooner, once the leader's heartbeats to it have failed
// for two heartbeat timeouts (voters.go), so that voters dying one after
// another leave raft its majority. When a majority of the voters dies before
// that anyway, the operator calls RecoverQuorum on the survivors
// (recover.go). After a network partition
// heals, members reconnect to the ones they lost (see joinLoop) and the
// returning member rejoins raft under its own ID.
//
// # Leases
//
// See Node.LeaseValid for the owner lease and the inequality that keeps a
// member cut off from the raft majority from accepting writes after the
// majority reassigned its partitions.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/partition"
)

// Node is one member's control plane. Its methods are safe for concurrent
// use.
type Node struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	ml     *membership.List
	raft   *raftRef // the current raft instance (RecoverQuorum replaces it)
	fsm    *fsm
	reqs   chan *request
	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool

	inRaft        atomic.Bool // this member has a raft configuration (meta InRaft gossiped)
	joinAttempted atomic.Bool // the first attempt to join the seeds is done
	seedless      atomic.Bool // the latest discovery answer named no member but this one
	seedsWarned   atomic.Bool // mayFoundAlone logged that it waits for the seeds

	born        time.Time    // origin of mono
	confirmed   atomic.Int64 // mono time the last lease confirmation was requested; 0 none
	leaseUntil  atomic.Int64 // mono time until which LeaseValid answers true without a full check
	leaderReady atomic.Bool  // leader whose post-election barrier is done
	netTimeout  time.Duration
	adm         admission        // leader: members on probation
	health      raftHealth       // leader: followers whose heartbeats fail
	qprobes     quarantineProbes // leader: probes of quarantined members
	rep         reporter         // ReportUnreachable's queue, sent by reportLoop
	obs         *raft.Observer

	closeOnce sync.Once
	closeErr  error

	co coordinator // owned by the run goroutine

	givenUpMu sync.Mutex
	givenUp   map[partition.MemberID]bool // members RecoverQuorum gave up on (see giveUpAbsent)

	probesMu sync.Mutex
	probes   map[partition.MemberID]*absentProbe // leader: absent members probed (see probeAbsent)

	refusal  atomic.Pointer[error] // why the cluster refused this member (see WaitReady)
	lastJoin atomic.Pointer[error] // the last failed attempt to join the seeds, for WaitReady's error
}

// MemberInfo describes one member of the directory.
type MemberInfo struct {
	ID            partition.MemberID
	TransportAddr string
	GossipAddr    string
	Voter         bool // a raft voter (false: non-voter or not in raft)
	Leader        bool // the raft leader, the coordinator
	Leaving       bool // asked to leave
	Alive         bool // alive according to this member's memberlist
}

// Start starts the control plane (see Open) and waits until this member is
// part of a raft cluster and holds a table assigned by the coordinator
// (epoch >= 1). When ctx ends first it stops everything and returns ctx's
// error. With ExpectMembers > 1 the members must be started concurrently.
func Start(ctx context.Context, cfg Config, deps Deps) (*Node, error) {
	n, err := Open(cfg, deps)
	if err != nil {
		return nil, err
	}
	if err := n.WaitReady(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Open starts the control plane without waiting for the cluster:
// memberlist, raft (over deps.Server's raft layer), the coordinator and the
// joining of the seeds. GossipAddr is valid at once; call WaitReady to wait
// for the first table.
func Open(cfg Config, deps Deps) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Server == nil || deps.Client == nil {
		return nil, fmt.Errorf("%w: Deps.Server and Deps.Client are required", ErrConfig)
	}
	cfg = cfg.WithDefaults()
	n := &Node{
		cfg:  cfg,
		deps: deps,
		log:  cfg.Logger,
		fsm:  newFSM(cfg.PartitionCount),
		reqs: make(chan *request, 1024),
		stop: make(chan struct{}),
		born: time.Now(),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.co.init()
	n.adm.init()
	n.health.init()
	n.qprobes.init()
	n.rep.init()

	var err error
	n.ml, err = membership.New(membership.Config{
		ID:            string(cfg.ID),
		TransportAddr: cfg.TransportAddr,
		BindAddr:      cfg.GossipBindAddr,
		AdvertiseAddr: cfg.GossipAdvertiseAddr,
		Timings:       cfg.Timings.Gossip,
		Network:       deps.Gossip,
		Logger:        cfg.Logger,
		Admission:     cfg.Admission,
		GossipKeys:    cfg.GossipKeys,
	})
	if err != nil {
		return nil, err
	}
	if err := n.startRaft(); err != nil {
		n.ml.Shutdown()
		return nil, err
	}
	n.register()
	obsCh := make(chan raft.Observation, 256)
	n.obs = raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.obs)
	n.wg.Add(5)
	go n.run()
	go n.joinLoop()
	go n.leaseLoop()
	go n.observeLoop(obsCh)
	go n.reportLoop()
	return n, nil
}

func (n *Node) startRaft() error {
	// Members get a fresh ID at every start, so nothing needs to survive a
	// restart: in-memory stores. They are kept with the instance for
	// RecoverQuorum.
	n.netTimeout = min(max(5*n.cfg.Timings.RaftHeartbeatTimeout, time.Second), 10*time.Second)
	store := raft.NewInmemStore()
	in, err := n.newRaftInst(store, raft.NewInmemSnapshotStore(), nil)
	if err != nil {
		return err
	}
	n.raft = newRaftRef()
	n.raft.setLocked(in)
	return nil
}

// newRaftInst starts a raft instance on the given stores with a new
// transport over deps.Server's raft layer. When recoverTo is non-nil it first
// rewrites the stores with raft.RecoverCluster to recoverTo (see
// RecoverQuorum).
func (n *Node) newRaftInst(logs *raft.InmemStore, snaps *raft.InmemSnapshotStore, recoverTo *raft.Configuration) (*raftInst, error) {
	cfg := n.cfg
	addr, err := net.ResolveTCPAddr("tcp", cfg.TransportAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: TransportAddr %q: %w", ErrConfig, cfg.TransportAddr, err)
	}
	level := hclog.Warn
	if n.log.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Info
	}
	hl := hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       level,
		Output:      membership.LogWriter(cfg.Logger, "raft", true),
		DisableTime: true,
	})
	timeout := n.netTimeout
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  n.deps.Server.RaftLayer(addr),
		MaxPool: 3,
		Timeout: timeout,
		Logger:  hl,
	})

	rc := raftConfig(cfg, hl)
	if err := raft.ValidateConfig(rc); err != nil {
		trans.Close()
		return nil, fmt.Errorf("%w: raft: %w", ErrConfig, err)
	}
	var recoverErr error
	if recoverTo != nil {
		// The scratch FSM only replays the log into the snapshot that
		// RecoverCluster writes; NewRaft restores n.fsm from it.
		recoverErr = raft.RecoverCluster(rc, newFSM(cfg.PartitionCount), logs, logs, snaps, trans, *recoverTo)
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, logs, snaps, trans)
	if err != nil {
		trans.Close()
		return nil, errors.Join(recoverErr, fmt.Errorf("control: start raft: %w", err))
	}
	in := &raftInst{r: r, trans: trans, logs: logs, snaps: snaps}
	if recoverErr != nil {
		return in, fmt.Errorf("control: recover raft configuration: %w", recoverErr)
	}
	return in, nil
}

// WaitReady blocks until this member is in a raft configuration, has a
// table of epoch >= 1 and holds its lease (LeaseValid), or ctx ends, or the
// node is closed, or the cluster refused this member (ErrJoinRefused).
func (n *Node) WaitReady(ctx context.Context) error {
	poll := time.NewTicker(n.cfg.Timings.RetryInterval)
	defer poll.Stop()
	var lastProbe time.Time
	for {
		t, ch := n.fsm.watchTable()
		if t.Epoch > 0 && n.inRaft.Load() && n.LeaseValid() {
			n.log.Info("control: ready", "id", n.cfg.ID, "epoch", t.Epoch, "gossip", n.GossipAddr())
			return nil
		}
		probe := time.Since(lastProbe) >= time.Second
		if probe {
			lastProbe = time.Now()
		}
		if err := n.refused(ctx, probe); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if p := n.lastJoin.Load(); p != nil && !n.inRaft.Load() {
				return fmt.Errorf("control: waiting for the cluster: %w (last attempt to join: %v)", ctx.Err(), *p)
			}
			return fmt.Errorf("control: waiting for the cluster: %w", ctx.Err())
		case <-n.stop:
			return ErrClosed
		case <-ch:
		case <-poll.C:
		}
	}
}

// LocalID is this member's ID.
func (n *Node) LocalID() partition.MemberID { return n.cfg.ID }

// GossipAddr is this member's advertised memberlist address, the seed
// others can join through.
func (n *Node) GossipAddr() string { return n.ml.GossipAddr() }

// Table returns the latest committed table. It is shared: callers must not
// modify it. Until the coordinator assigns the partitions it is an epoch-0
// table of PartitionCount empty assignments.
func (n *Node) Table() *partition.Table { return n.fsm.table() }

// Watch returns the latest committed table and a channel that is closed
// once a newer table is committed (call Watch again for the next one).
func (n *Node) Watch() (*partition.Table, <-chan struct{}) { return n.fsm.watchTable() }

// MemberAddr resolves a member's transport address through the replicated
// directory.
func (n *Node) MemberAddr(id partition.MemberID) (string, bool) {
	e, ok := n.fsm.member(id)
	if !ok {
		return "", false
	}
	return e.TransportAddr, true
}

// Members lists the directory, sorted by ID, with each member's raft role
// as this member knows it.
func (n *Node) Members() []MemberInfo {
	_, dir := n.fsm.snapshot()
	voters := map[raft.ServerID]bool{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			voters[s.ID] = s.Suffrage == raft.Voter
		}
	}
	alive := map[string]bool{}
	for _, m := range n.ml.Alive() {
		alive[m.ID] = true
	}
	_, leader := n.raft.LeaderWithID()
	out := make([]MemberInfo, 0, len(dir))
	for id, e := range dir {
		if e.Removed {
			continue
		}
		out = append(out, MemberInfo{
			ID: id, TransportAddr: e.TransportAddr, GossipAddr: e.GossipAddr,
			Voter: voters[raft.ServerID(id)], Leader: leader == raft.ServerID(id),
			Leaving: e.Leaving, Alive: alive[string(id)],
		})
	}
	slices.SortFunc(out, func(a, b MemberInfo) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// IsLeader reports whether this member is the raft leader (the
// coordinator).
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaseValid reports whether this member may accept writes now: whether it
// is in contact with the raft quorum and its table is current. The leader
// holds the lease while it is leader (raft makes it step down once it has
// not heard from a quorum for RaftLeaderLeaseTimeout); a follower or
// non-voter holds it while it knows a leader, its last contact with that
// leader is younger than LeaseDuration, and its last lease confirmation (see
// lease.go: the leader, which still had this member in its raft
// configuration, told it an index its FSM has since applied) was requested
// less than LeaseDuration ago, all measured with this process's monotonic
// clock. The confirmation keeps a member that was cut off, removed and
// re-added under the same ID from serving its stale table between the first
// heartbeat of the leader and the end of its catch-up.
//
// Why this keeps a cut-off member from writing after the majority reassigned
// its partitions: the coordinator acts on a dead member m only in this order
// (1) memberlist declares m dead, or the leader's raft heartbeats to m have
// failed for RaftContactTimeout (an asymmetric partition), (2) the coordinator removes m from raft at
// time R, after which the leader sends it nothing, (3) it commits a table
// without m no earlier than
//
//	R + LeaseDuration + RaftLeaderLeaseTimeout + LeaseMargin   (Config.DeadWait)
//
// m's last contact C with any leader is at most R + RaftLeaderLeaseTimeout:
// either the current leader (C <= R) or an old leader cut off with m, which
// stops being leader within RaftLeaderLeaseTimeout of losing its quorum,
// before a newer leader could exist to remove m. m's lease ends at
// C + LeaseDuration on m's clock, so it ends before the table commit as long
// as clock rates and scheduling differ by less than LeaseMargin over that
// span. A leader cut off from the majority likewise stops being leader
// within RaftLeaderLeaseTimeout, long before the others elect a new leader,
// detect its death and wait DeadWait.
//
// A positive answer is reused for at most leaseCacheWindow (a small fraction
// of LeaseDuration, far below LeaseMargin) and never past the end of the
// lease it was computed from, so that writes on the hot path do not take
// raft's locks each time.
func (n *Node) LeaseValid() bool {
	if n.closed.Load() {
		return false
	}
	now := n.mono()
	if now < n.leaseUntil.Load() {
		return true
	}
	until, ok := n.leaseCheck(now)
	if ok {
		n.leaseUntil.Store(until)
	}
	return ok
}

// leaseCacheWindow bounds how long a positive LeaseValid answer is reused:
// 1% of the lease duration, at most 2ms.
func (n *Node) leaseCacheWindow() time.Duration {
	return min(n.cfg.Timings.LeaseDuration/100, 2*time.Millisecond)
}

// leaseCheck is the full lease check at mono time now. When the lease is
// valid it also returns until when the answer may be reused.
func (n *Node) leaseCheck(now int64) (int64, bool) {
	until := now + int64(n.leaseCacheWindow())
	switch n.raft.State() {
	case raft.Leader:
		return until, true
	case raft.Follower:
		_, id := n.raft.LeaderWithID()
		if id == "" || id == raft.ServerID(n.cfg.ID) {
			return 0, false
		}
		last := n.raft.LastContact()
		if last.IsZero() {
			return 0, false
		}
		contact := n.cfg.Timings.LeaseDuration - time.Since(last)
		confirm := n.cfg.Timings.LeaseDuration - n.confirmedFor()
		if contact <= 0 || confirm <= 0 {
			return 0, false
		}
		return min(until, now+int64(contact), now+int64(confirm)), true
	}
	return 0, false
}

// RecoverQuorum is the operator's way out when raft lost its voter majority
// for good (a majority of the voters died before the leader could replace
// them): no leader can be elected, so no table is committed and no member
// holds its lease. It rewrites this member's raft configuration to the live
// members and restarts raft; see recover.go for the procedure and its
// rules. Call it on every surviving member, once failure detection on each
// reports the dead members dead. It returns as soon as the new raft instance
// runs, without waiting for the election (WaitReady waits for the cluster);
// ctx is consulted only before the restart, which is not interruptible. It
// returns ErrQuorumIntact, and changes nothing, while this member knows a
// leader or a majority of the voters is alive; ErrNotMember on a member that
// was never in a raft cluster; ErrClosed after Close.
func (n *Node) RecoverQuorum(ctx context.Context) error {
	return n.recoverQuorum(ctx)
}

// ResetLost clears the Lost mark of the partitions in parts (of every lost
// partition when parts is empty), so that they are served again, empty
// (see partition.Assignment.Lost and partition.ResetLost); their LostAt
// stays. The request is forwarded to the raft leader, retried across leader
// changes until ctx ends, and ResetLost returns once the table without the
// marks is committed (at once when none of them is marked). It returns
// ErrNoPartition, and resets nothing, when parts names a partition out of
// range.
func (n *Node) ResetLost(ctx context.Context, parts []partition.ID) error {
	ps := make([]int32, len(parts))
	for i, p := range parts {
		if p < 0 || int(p) >= n.cfg.PartitionCount {
			return fmt.Errorf("%w: %d (%d partitions)", ErrNoPartition, p, n.cfg.PartitionCount)
		}
		ps[i] = int32(p)
	}
	if err := n.toLeader(ctx, rpcReq{Op: reqResetLost, From: n.cfg.ID, Parts: ps}); err != nil {
		return fmt.Errorf("control: reset lost partitions: %w", err)
	}
	return nil
}

// ReportSynced tells the coordinator that pending member m now holds a full
// copy of partition p. The caller is p's owner; epoch is the table epoch at
// which it started the copy. The report is forwarded to the raft leader,
// retried across leader changes until ctx ends, and ReportSynced returns once
// the resulting table is committed. It returns ErrStale when the report does
// not apply to the committed table (m is not pending for p, the caller is not
// p's owner any more, or m became pending again after epoch: the copy belongs
// to an earlier stint, see partition.CompleteCopy).
func (n *Node) ReportSynced(ctx context.Context, p partition.ID, m partition.MemberID, epoch uint64) error {
	return n.toLeader(ctx, rpcReq{Op: reqSync, From: n.cfg.ID, P: int32(p), M: m, Epoch: epoch})
}

// Leave leaves the cluster gracefully: it tells the coordinator that this
// member is leaving, waits until the committed table assigns it nothing
// (the map service moves the data, driven by the table), hands raft
// leadership to another voter if it is the leader, has itself removed from
// raft, leaves memberlist and stops. If ctx ends first it returns ctx's
// error and the node keeps running (call Close). A member that is the last
// one alive just stops.
func (n *Node) Leave(ctx context.Context) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if err := n.toLeader(ctx, rpcReq{Op: reqLeave, From: n.cfg.ID}); err != nil {
		return fmt.Errorf("control: leave: %w", err)
	}
	for {
		if err := n.waitDrained(ctx); err != nil {
			return fmt.Errorf("control: leave: %w", err)
		}
		if n.alone() {
			break
		}
		if n.raft.State() == raft.Leader {
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Warn("control: leadership transfer failed", "err", err)
			}
		}
		err := n.toLeader(ctx, rpcReq{Op: reqRemove, From: n.cfg.ID})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotDrained) {
			return fmt.Errorf("control: leave: %w", err)
		}
	}
	if err := n.ml.Leave(n.cfg.Timings.Gossip.TCPTimeout); err != nil {
		n.log.Warn("control: memberlist leave", "err", err)
	}
	return n.Close()
}

// waitDrained waits until the committed table names this member nowhere, or
// it is the last member standing.
func (n *Node) waitDrained(ctx context.Context) error {
	poll := time.NewTicker(n.cfg.Timings.ReconcileInterval)
	defer poll.Stop()
	for {
		t, ch := n.Watch()
		if !slices.Contains(t.Members(), n.cfg.ID) || n.alone() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stop:
			return ErrClosed
		case <-ch:
		case <-poll.C:
		}
	}
}

// Alone reports whether this member is the only live, non-leaving member: a graceful leave
// has nobody to hand its partitions to.
func (n *Node) Alone() bool { return n.alone() }

// alone reports whether no other live, non-leaving member is in the
// directory: nobody could take this member's partitions or raft role.
func (n *Node) alone() bool {
	_, dir := n.fsm.snapshot()
	for _, m := range n.ml.Alive() {
		id := partition.MemberID(m.ID)
		if e, ok := dir[id]; ok && id != n.cfg.ID && !e.Leaving && !e.Removed && !m.Leaving {
			return false
		}
	}
	return true
}

// Close stops the node abruptly, as a crash would: nobody is told; the
// others declare it dead. It stops every goroutine of the node and is
// idempotent. The transport server and client are not closed.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		close(n.stop)
		n.raft.DeregisterObserver(n.obs)
		err := n.raft.Shutdown().Error()
		if terr := n.raft.transport().Close(); err == nil {
			err = terr
		}
		if merr := n.ml.Shutdown(); err == nil && merr != nil && !errors.Is(merr, membership.ErrClosed) {
			err = merr
		}
		n.wg.Wait()
		n.closeErr = err
	})
	return n.closeErr
}

// cutRaft simulates an asymmetric partition (tests): this member stops
// exchanging raft traffic while it keeps gossiping and serving control
// requests.
func (n *Node) cutRaft() { n.raft.transport().Close() }

// cutOff simulates a network partition isolating this member (tests): it
// stops gossiping and exchanging raft traffic without telling anyone, while
// the node keeps answering LeaseValid, Table and Watch.
func (n *Node) cutOff() {
	n.ml.Shutdown()
	n.raft.transport().Close()
}

// stopContext returns a context that ends when the node stops or cancel is called, for the
// node's loops that call APIs taking a context. The goroutine linking the two ends with it.
func (n *Node) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
