package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/gridmap/gridmap/discovery"
	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Config configures a Node. The contract is the module's: zero fields take the documented
// defaults (WithDefaults fills them in), Validate reports every problem of c.WithDefaults() in
// one error wrapping ErrConfig, and Open does both. ID and TransportAddr are required.
type Config struct {
	// ID identifies this member incarnation; it is also its raft server ID
	// and memberlist node name. It must be fresh at every process start.
	// Required.
	ID partition.MemberID
	// TransportAddr is the advertised transport (and raft) address
	// host:port. Required.
	TransportAddr string
	// GossipBindAddr is the memberlist bind address host:port; port 0
	// picks a free port. Default "127.0.0.1:0".
	GossipBindAddr string
	// GossipAdvertiseAddr is the gossip address others use. "" means the
	// bind address (with the picked port).
	GossipAdvertiseAddr string
	// Discovery yields the seeds to join. nil means none: this member
	// founds the cluster. A member whose seeds do not answer waits for them
	// (see BootstrapWithoutSeeds).
	Discovery discovery.Discovery
	// ExpectMembers is how many members (this one included) must see each
	// other, none of them in a raft cluster yet, before the one with the
	// lowest ID bootstraps raft. Start every member of a cluster that is
	// created at once with the same value, the number of members started
	// together. Default 1: a member founds a cluster alone when Discovery
	// names nobody else (see BootstrapWithoutSeeds for seeds that do not
	// answer), and any two fresh members that reach each other found one
	// together.
	ExpectMembers int
	// BootstrapWithoutSeeds lets this member found a new cluster alone when
	// Discovery names seeds but none of them answers. Default false: a
	// member whose seeds do not answer keeps trying to join them (WaitReady
	// waits until its context ends) and never founds a cluster of its own,
	// so that a member started while its cluster is unreachable does not
	// split from it. A member whose Discovery names nobody but itself (nil,
	// empty, or only its own address) founds a cluster either way, and
	// members that reach each other bootstrap together per ExpectMembers.
	BootstrapWithoutSeeds bool
	// MaxVoters is the number of raft voters kept (the rest are
	// non-voters, promoted when a voter dies): 3 or 5. Default 3.
	MaxVoters int
	// PartitionCount is the number of partitions. Default
	// partition.DefaultCount (271).
	PartitionCount int
	// Plan tunes the partition planner (backups per partition, concurrent
	// copies per member). Backups default 0 when zero, as in PlanConfig.
	Plan partition.PlanConfig
	// LeaseMargin is added to the coordinator's wait before it reassigns a
	// dead member's partitions, to cover clock-rate differences and
	// scheduling delays (see Node.LeaseValid). Default
	// Timings.LeaseDuration/4.
	LeaseMargin time.Duration
	// LostGrace is how long the coordinator waits for absent members that
	// may still hold their data (stopped, or cut off by the network: their
	// address does not answer) to come back, before it marks lost the
	// partitions whose every replica is among them; meanwhile those
	// partitions wait, unserved (see partition.Members.Unreachable). Members
	// whose process is known to be gone (their address refuses connections
	// or answers with another ID) are not waited for: their losses are
	// marked at once. Default 40 DeadWaits (62 s with the local timings,
	// 170 s on LAN).
	LostGrace time.Duration
	// Timings are the raft, gossip and coordinator timings. Zero fields
	// take their value from DefaultTimings().
	Timings Timings
	// Logger receives the control plane's log, raft's and memberlist's
	// (their INFO chatter at Debug). nil discards.
	Logger *slog.Logger
	// Admission is the cluster name and join secret every member must
	// present (see membership.Admission). Nil: none.
	Admission *membership.Admission
	// GossipKeys encrypt the gossip (see membership.Config.GossipKeys).
	GossipKeys [][]byte
	// VerifyTransport makes the leader call a new member over the transport
	// before admitting it to raft, and a joining member call the cluster,
	// so that a member whose transport the others cannot use (with TLS: a
	// certificate not signed by the cluster's CA) is refused, logged with
	// its address, and never handed partitions. Set it with TLS.
	VerifyTransport bool
}

// Timings are the raft, memberlist and coordinator timings of a Node.
type Timings struct {
	// Gossip are memberlist's failure-detection timings.
	Gossip membership.Timings
	// RaftHeartbeatTimeout is how long a follower waits without contact
	// before it starts an election; the leader sends heartbeats ten times
	// per timeout, and swaps a voter whose heartbeats have failed for twice
	// this for a healthy non-voter. Default 1s.
	RaftHeartbeatTimeout time.Duration
	// RaftElectionTimeout is how long a candidate waits for votes. Default 1s.
	RaftElectionTimeout time.Duration
	// RaftLeaderLeaseTimeout is how long a leader stays leader without
	// hearing from a quorum. Must be at most RaftHeartbeatTimeout and below
	// LeaseDuration. Default 500ms.
	RaftLeaderLeaseTimeout time.Duration
	// RaftCommitTimeout bounds the delay before an idle leader tells the
	// followers the commit index. Default 50ms.
	RaftCommitTimeout time.Duration
	// LeaseDuration is the owner lease: a follower accepts writes
	// (LeaseValid) only while its last contact with the raft leader, and
	// its last lease confirmation, are younger than this. See Validate for
	// how it must relate to the raft timings. Default 3s.
	LeaseDuration time.Duration
	// ReconcileInterval is how often the coordinator re-checks the
	// membership and the plan even when nothing happened (a safety net;
	// changes are acted upon at once). Default 1s.
	ReconcileInterval time.Duration
	// JoinRetryInterval is the pause between attempts to join the seeds.
	// Default 1s.
	JoinRetryInterval time.Duration
	// BootstrapSettle is how long the bootstrap candidate's view (members
	// seen, none in raft) must stay unchanged before it bootstraps.
	// Default 1s.
	BootstrapSettle time.Duration
	// RetryInterval is the first pause before a request to the leader is
	// retried (doubling up to 10 times that). Default 50ms.
	RetryInterval time.Duration
	// RaftContactTimeout is how long the leader tolerates failing raft
	// heartbeats to a member before it treats the member as failed even
	// though memberlist reports it alive (an asymmetric partition: gossip
	// gets through, raft does not). The member is then removed from raft and
	// its partitions are reassigned after DeadWait, as for a dead member; it
	// is re-admitted, on probation, after a backoff. Default 5s.
	RaftContactTimeout time.Duration
	// SuspectBackoff is how long a member reported unreachable (see
	// Node.ReportUnreachable) is kept out of backups and copies at its first
	// demotion; each new demotion doubles it, up to 16 times this value (a
	// member not demoted for that long starts again here). Shorter
	// re-admits a member that recovered sooner; a member that stays
	// unreachable then makes writes wait for it again (for the map
	// service's backup timeout) at every re-admission. Default 2s.
	SuspectBackoff time.Duration
}

// DefaultTimings are the production timings for members on one LAN:
// memberlist's LAN timings and hashicorp/raft's defaults. What they cost when
// a member crashes:
//   - declared failed: about 5 to 6 seconds after the crash by memberlist in
//     clusters of fewer than 4 members, 5 to 12 in larger ones (see
//     membership.LANTimings); the raft leader also treats a member whose
//     heartbeats fail for RaftContactTimeout (5s) as failed, whichever comes
//     first.
//   - a dead raft voter is swapped for a live non-voter once the leader's
//     heartbeats to it have failed for 2s (see voters.go): measured 2.4 to
//     2.7 seconds after the crash of a follower, 3.6 to 5.6 after the crash
//     of the leader (the election comes first).
//   - DeadWait: 4.25s (lease 3s + leader lease 500ms + margin 750ms).
//   - partitions reassigned (backups promoted, new copies started): about 10
//     to 11 seconds after the crash in small clusters (measured 10.5 to 12.7
//     with 5 members on loopback, the leader's crash at the high end).
//   - false suspicions: rare (a member must miss probes for 500ms and not
//     refute for 4s); a member falsely declared dead is re-admitted.
func DefaultTimings() Timings {
	return Timings{
		Gossip:                 membership.LANTimings(),
		RaftHeartbeatTimeout:   time.Second,
		RaftElectionTimeout:    time.Second,
		RaftLeaderLeaseTimeout: 500 * time.Millisecond,
		RaftCommitTimeout:      50 * time.Millisecond,
		LeaseDuration:          3 * time.Second,
		ReconcileInterval:      time.Second,
		JoinRetryInterval:      time.Second,
		BootstrapSettle:        time.Second,
		RetryInterval:          50 * time.Millisecond,
		RaftContactTimeout:     5 * time.Second,
		SuspectBackoff:         2 * time.Second,
	}
}

// LocalTimings are fast timings for clusters on one machine (tests, demos),
// still stable on a loaded 2-core machine under the race detector. What they
// cost when a member crashes:
//   - declared failed: about 1 to 3 seconds after the crash by memberlist
//     (membership.LocalTimings), or after RaftContactTimeout (1.5s) of failing
//     raft heartbeats.
//   - a dead raft voter is swapped for a live non-voter after 1s of failing
//     heartbeats or when declared failed: measured 1.2 to 1.8 seconds after
//     the crash.
//   - DeadWait: 1.55s (lease 1s + leader lease 300ms + margin 250ms).
//   - partitions reassigned: about 2.5 to 4.5 seconds after the crash
//     (measured 2.9 to 3.5 with 5 members).
//   - false suspicions: a process stalled for more than about 200ms (probe
//     timeout) is suspected, for more than about a second declared dead; fine
//     on one machine, not across a network.
func LocalTimings() Timings {
	return Timings{
		Gossip:                 membership.LocalTimings(),
		RaftHeartbeatTimeout:   500 * time.Millisecond,
		RaftElectionTimeout:    500 * time.Millisecond,
		RaftLeaderLeaseTimeout: 300 * time.Millisecond,
		RaftCommitTimeout:      20 * time.Millisecond,
		LeaseDuration:          time.Second,
		ReconcileInterval:      250 * time.Millisecond,
		JoinRetryInterval:      200 * time.Millisecond,
		BootstrapSettle:        200 * time.Millisecond,
		RetryInterval:          20 * time.Millisecond,
		RaftContactTimeout:     1500 * time.Millisecond,
		SuspectBackoff:         time.Second,
	}
}

// WANTimings are timings for members far apart (round trips around 100ms,
// occasional loss): memberlist's WAN timings and raft timings about twice
// hashicorp/raft's defaults. What they cost when a member crashes:
//   - declared failed: about 35 to 40 seconds after the crash by memberlist
//     (membership.WANTimings), but the raft leader treats a member whose
//     heartbeats fail for RaftContactTimeout (10s) as failed first, so a
//     crashed member (which refuses or drops raft connections) is treated as
//     failed after about 10 seconds.
//   - a dead raft voter is swapped for a live non-voter once the leader's
//     heartbeats to it have failed for 4s: measured 4.3 seconds after the
//     crash of a follower, 8.9 after the crash of the leader.
//   - DeadWait: 7.25s (lease 5s + leader lease 1s + margin 1.25s).
//   - partitions reassigned: about 18 to 23 seconds after the crash (the
//     leader's crash at the high end).
//   - false suspicions: very rare (missed probes for 3s, then 30s without
//     refutation; raft heartbeats failing for 10s).
func WANTimings() Timings {
	return Timings{
		Gossip:                 membership.WANTimings(),
		RaftHeartbeatTimeout:   2 * time.Second,
		RaftElectionTimeout:    2 * time.Second,
		RaftLeaderLeaseTimeout: time.Second,
		RaftCommitTimeout:      50 * time.Millisecond,
		LeaseDuration:          5 * time.Second,
		ReconcileInterval:      time.Second,
		JoinRetryInterval:      2 * time.Second,
		BootstrapSettle:        3 * time.Second,
		RetryInterval:          100 * time.Millisecond,
		RaftContactTimeout:     10 * time.Second,
		SuspectBackoff:         5 * time.Second,
	}
}

// Deps are the transport pieces a Node uses: the server receives the
// control-plane requests (message types 40..59) and raft's connections; the
// client sends requests to the leader. The Node does not close them.
type Deps struct {
	Server *transport.Server
	Client *transport.Client
	// Gossip, when not nil, carries memberlist's traffic in memory (members
	// of one process, in tests; see membership.Config.Network). Nil: UDP and
	// TCP sockets on GossipBindAddr.
	Gossip *membership.MemNetwork
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.GossipBindAddr == "" {
		c.GossipBindAddr = "127.0.0.1:0"
	}
	if c.ExpectMembers == 0 {
		c.ExpectMembers = 1
	}
	if c.MaxVoters == 0 {
		c.MaxVoters = 3
	}
	if c.PartitionCount == 0 {
		c.PartitionCount = partition.DefaultCount
	}
	c.Timings = c.Timings.WithDefaults()
	if c.LeaseMargin == 0 {
		c.LeaseMargin = c.Timings.LeaseDuration / 4
	}
	if c.LostGrace == 0 {
		c.LostGrace = lostGraceScale * (c.Timings.LeaseDuration + c.Timings.RaftLeaderLeaseTimeout + c.LeaseMargin)
	}
	return c
}

// lostGraceScale is LostGrace's default, in DeadWaits.
const lostGraceScale = 40

// Validate reports every problem of c.WithDefaults() in one error wrapping
// ErrConfig: its own fields, raft's rules for the raft timings (checked by
// raft.ValidateConfig on the configuration Open gives raft), memberlist's
// for the gossip timings, and how the owner lease must relate to raft:
//
//   - RaftLeaderLeaseTimeout <= RaftHeartbeatTimeout (raft's own rule, and
//     the one the lease's safety rests on): a leader cut off from the
//     majority steps down within RaftLeaderLeaseTimeout, before any
//     follower has even started an election, so that no member can be in
//     contact with an old leader after a newer one exists. That bounds a
//     cut-off member's last contact, and DeadWait (LeaseDuration +
//     RaftLeaderLeaseTimeout + LeaseMargin after the member is removed)
//     outlasts its lease: a deposed owner stops serving before the new
//     owner starts.
//   - RaftElectionTimeout >= RaftHeartbeatTimeout (raft's rule).
//   - LeaseDuration > RaftLeaderLeaseTimeout: a follower's lease lasts
//     longer than the leader's own, so losing the leader does not take
//     the followers' leases before the leader has stepped down.
//   - LeaseDuration >= RaftHeartbeatTimeout/2: the leader contacts each
//     follower every RaftHeartbeatTimeout/10; a shorter lease would lapse
//     between heartbeats on a loaded machine (availability, not safety).
//
// A lease that also outlasts an election (LeaseDuration >=
// RaftHeartbeatTimeout + RaftElectionTimeout, as in every preset) keeps the
// followers serving while a crashed leader is replaced; shorter is valid
// but pauses writes on every member during each election.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("ID is empty"))
	}
	if err := checkHostPort(c.TransportAddr, false); err != nil {
		errs = append(errs, fmt.Errorf("TransportAddr %q: %w", c.TransportAddr, err))
	}
	if err := checkHostPort(c.GossipBindAddr, true); err != nil {
		errs = append(errs, fmt.Errorf("GossipBindAddr %q: %w", c.GossipBindAddr, err))
	}
	if c.GossipAdvertiseAddr != "" {
		if err := checkHostPort(c.GossipAdvertiseAddr, true); err != nil {
			errs = append(errs, fmt.Errorf("GossipAdvertiseAddr %q: %w", c.GossipAdvertiseAddr, err))
		}
	}
	if c.ExpectMembers < 1 {
		errs = append(errs, fmt.Errorf("ExpectMembers %d must be at least 1", c.ExpectMembers))
	}
	if c.MaxVoters != 3 && c.MaxVoters != 5 {
		errs = append(errs, fmt.Errorf("MaxVoters %d must be 3 or 5", c.MaxVoters))
	}
	if c.PartitionCount < 1 {
		errs = append(errs, fmt.Errorf("PartitionCount %d must be positive", c.PartitionCount))
	}
	if err := c.Plan.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("invalid Plan: %w", err))
	}
	t := c.Timings
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RaftHeartbeatTimeout", t.RaftHeartbeatTimeout}, {"RaftElectionTimeout", t.RaftElectionTimeout},
		{"RaftLeaderLeaseTimeout", t.RaftLeaderLeaseTimeout}, {"RaftCommitTimeout", t.RaftCommitTimeout},
		{"ReconcileInterval", t.ReconcileInterval}, {"JoinRetryInterval", t.JoinRetryInterval},
		{"BootstrapSettle", t.BootstrapSettle}, {"RetryInterval", t.RetryInterval},
		{"LeaseDuration", t.LeaseDuration}, {"LeaseMargin", c.LeaseMargin},
		{"RaftContactTimeout", t.RaftContactTimeout}, {"SuspectBackoff", t.SuspectBackoff},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v must be positive", d.name, d.v))
		}
	}
	if t.RaftLeaderLeaseTimeout > t.RaftHeartbeatTimeout {
		errs = append(errs, fmt.Errorf("RaftLeaderLeaseTimeout %v exceeds RaftHeartbeatTimeout %v", t.RaftLeaderLeaseTimeout, t.RaftHeartbeatTimeout))
	}
	if t.LeaseDuration <= t.RaftLeaderLeaseTimeout {
		errs = append(errs, fmt.Errorf("LeaseDuration %v must exceed RaftLeaderLeaseTimeout %v", t.LeaseDuration, t.RaftLeaderLeaseTimeout))
	}
	if t.RaftContactTimeout < t.RaftHeartbeatTimeout {
		errs = append(errs, fmt.Errorf("RaftContactTimeout %v is below RaftHeartbeatTimeout %v", t.RaftContactTimeout, t.RaftHeartbeatTimeout))
	}
	if t.LeaseDuration < t.RaftHeartbeatTimeout/2 {
		errs = append(errs, fmt.Errorf("LeaseDuration %v is below half RaftHeartbeatTimeout %v: followers would lose their lease between heartbeats", t.LeaseDuration, t.RaftHeartbeatTimeout))
	}
	if t.RaftElectionTimeout < t.RaftHeartbeatTimeout {
		errs = append(errs, fmt.Errorf("RaftElectionTimeout %v is below RaftHeartbeatTimeout %v", t.RaftElectionTimeout, t.RaftHeartbeatTimeout))
	}
	// The rest of raft's rules (minimum timeouts), on the configuration Open gives raft. The
	// two rules above are raft's too: they are reported above, with the fields' names, so
	// they are taken out of raft's way here (it reports only its first problem).
	rc := raftConfig(c, nil)
	rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, rc.HeartbeatTimeout)
	rc.ElectionTimeout = max(rc.ElectionTimeout, rc.HeartbeatTimeout)
	if err := raft.ValidateConfig(rc); err != nil {
		errs = append(errs, fmt.Errorf("raft: %w", err))
	}
	mc := membership.Config{ID: "x", TransportAddr: "127.0.0.1:1", BindAddr: "127.0.0.1:0", Timings: t.Gossip}
	if err := mc.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("invalid Timings.Gossip: %w", err))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
}

// Raft log compaction (see raftConfig).
const (
	snapshotThreshold = 64 // entries since the last snapshot that make the next one due
	trailingLogs      = 16 // entries kept after a snapshot, for followers slightly behind
)

// raftConfig is the raft configuration of a node with configuration c (after
// defaults), logging to logger (nil: raft's default).
func raftConfig(c Config, logger hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	if rc.LocalID == "" {
		rc.LocalID = "unnamed" // reported by Validate as "ID is empty"
	}
	rc.HeartbeatTimeout = c.Timings.RaftHeartbeatTimeout
	rc.ElectionTimeout = c.Timings.RaftElectionTimeout
	rc.LeaderLeaseTimeout = c.Timings.RaftLeaderLeaseTimeout
	rc.CommitTimeout = c.Timings.RaftCommitTimeout
	rc.ShutdownOnRemove = false // a member removed by mistake (false death) can be added again
	// Every table the coordinator commits is a whole table (30 KB with 271
	// partitions and 5 members), so a member that missed N of them replays N
	// tables, while a snapshot is one table and the directory: a member
	// re-admitted after a long fault replayed some 250 tables, 8 to 12 s under
	// -race on a loaded machine (decoding one took 50 to 100 ms), before it
	// could be given partitions. So the log is compacted often and keeps few
	// trailing entries: a member further behind than trailingLogs gets a
	// snapshot instead (see also syncRaft, which snapshots before it re-admits
	// a quarantined member).
	rc.SnapshotThreshold = snapshotThreshold
	rc.TrailingLogs = trailingLogs
	rc.SnapshotInterval = 10 * c.Timings.RaftHeartbeatTimeout
	if logger != nil {
		rc.Logger = logger
	}
	return rc
}

// DeadWait is how long the coordinator waits, after a member is declared
// dead and removed from raft, before it reassigns the member's partitions:
// LeaseDuration + RaftLeaderLeaseTimeout + LeaseMargin. See Node.LeaseValid.
func (c Config) DeadWait() time.Duration {
	c = c.WithDefaults()
	return c.Timings.LeaseDuration + c.Timings.RaftLeaderLeaseTimeout + c.LeaseMargin
}

// WithDefaults returns t with every zero field set to its DefaultTimings
// value (Gossip as a whole when it is zero).
func (t Timings) WithDefaults() Timings {
	d := DefaultTimings()
	if t.Gossip == (membership.Timings{}) {
		t.Gossip = d.Gossip
	}
	for _, f := range []struct{ v, d *time.Duration }{
		{&t.RaftHeartbeatTimeout, &d.RaftHeartbeatTimeout}, {&t.RaftElectionTimeout, &d.RaftElectionTimeout},
		{&t.RaftLeaderLeaseTimeout, &d.RaftLeaderLeaseTimeout}, {&t.RaftCommitTimeout, &d.RaftCommitTimeout},
		{&t.LeaseDuration, &d.LeaseDuration}, {&t.ReconcileInterval, &d.ReconcileInterval},
		{&t.JoinRetryInterval, &d.JoinRetryInterval}, {&t.BootstrapSettle, &d.BootstrapSettle},
		{&t.RetryInterval, &d.RetryInterval}, {&t.RaftContactTimeout, &d.RaftContactTimeout},
		{&t.SuspectBackoff, &d.SuspectBackoff},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return t
}

func checkHostPort(hp string, portZeroOK bool) error {
	_, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 || p > 65535 || (p == 0 && !portZeroOK) {
		return fmt.Errorf("bad port %q", ps)
	}
	return nil
}
