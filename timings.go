package gridmap

import (
	"time"

	"github.com/gridmap/gridmap/internal/control"
	"github.com/gridmap/gridmap/internal/engine"
)

// Timings are a member's failure-detection, raft and repair timings. They decide how quickly a
// crashed member is noticed and its partitions served again, and how much network delay or
// scheduling hiccup the cluster tolerates before it suspects a healthy member. Start from a
// preset (LANTimings, LocalTimings, WANTimings) and change single fields; a zero field takes
// its LANTimings value. Every member of a cluster should use the same timings.
//
// A crashed member costs, in order: failure detection (about ProbeInterval + ProbeTimeout to
// notice, then the suspicion timeout of SuspicionMult * max(1, log10(members)) * ProbeInterval,
// up to SuspicionMaxTimeoutMult times longer until other members confirm), then the dead wait
// before its owned partitions are given to their backups (LeaseDuration * 1.25 +
// RaftLeaderLeaseTimeout, so that the dead member's lease has surely ended). Writes whose only
// problem is a dead backup wait for it until its connection fails (at once for a crashed
// process), or about three BackupAckTimeouts of silence for a stopped or cut-off one.
type Timings struct {
	// ProbeInterval is the time between gossip failure probes of one member by another. LAN
	// default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for an answer before asking other members to
	// probe indirectly; it must be below ProbeInterval and above the network's round trip. LAN
	// default 500ms.
	ProbeTimeout time.Duration
	// IndirectChecks is the number of members asked to probe a member that did not answer a
	// direct probe. LAN default 3.
	IndirectChecks int
	// SuspicionMult scales the time a suspected member has to refute the suspicion before it
	// is declared dead: SuspicionMult * max(1, log10(members)) * ProbeInterval. LAN default 4.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds how much longer than that the suspicion lasts while no
	// other member confirms it (in clusters of 4 or more). LAN default 6.
	SuspicionMaxTimeoutMult int
	// GossipInterval is the time between gossip rounds (how fast news of a death spreads). LAN
	// default 200ms.
	GossipInterval time.Duration
	// PushPullInterval is the time between full membership exchanges with a random member.
	// LAN default 30s.
	PushPullInterval time.Duration
	// GossipTCPTimeout bounds a gossip TCP exchange (join, push-pull, fallback probe). LAN
	// default 10s.
	GossipTCPTimeout time.Duration

	// RaftHeartbeatTimeout is how long a raft follower waits without hearing from the leader
	// before it starts an election (the leader sends heartbeats ten times per timeout). LAN
	// default 1s.
	RaftHeartbeatTimeout time.Duration
	// RaftElectionTimeout is how long a raft candidate waits for votes. At least
	// RaftHeartbeatTimeout. LAN default 1s.
	RaftElectionTimeout time.Duration
	// RaftLeaderLeaseTimeout is how long the raft leader stays leader without hearing from a
	// majority. At most RaftHeartbeatTimeout, below LeaseDuration. LAN default 500ms.
	RaftLeaderLeaseTimeout time.Duration
	// RaftCommitTimeout bounds the delay before an idle raft leader tells the followers the
	// commit index. LAN default 50ms.
	RaftCommitTimeout time.Duration
	// RaftContactTimeout is how long the coordinator tolerates failing raft heartbeats to a
	// member that gossip still reports alive (an asymmetric network partition) before it
	// treats the member as failed. At least RaftHeartbeatTimeout. LAN default 5s.
	RaftContactTimeout time.Duration

	// LeaseDuration is the owner lease: how long an owner keeps serving after it last heard
	// from the raft majority. The coordinator waits LeaseDuration * 1.25 +
	// RaftLeaderLeaseTimeout after a member's death before it reassigns the member's owned
	// partitions, so a longer lease tolerates longer pauses of a member (a stalled process, a
	// slow network) but costs as much more unavailability after a crash. LAN default 3s.
	//
	// Validate checks it against the raft timings. Safety (promise 5: a deposed owner stops
	// serving before the new owner starts) needs RaftLeaderLeaseTimeout <= RaftHeartbeatTimeout,
	// so that a leader cut off from the majority steps down before a new one can be elected,
	// which bounds the last contact of a cut-off member; the coordinator's wait then outlasts
	// its lease. The lease must exceed RaftLeaderLeaseTimeout and be at least half
	// RaftHeartbeatTimeout (the leader contacts followers every tenth of it), or followers lose
	// it between heartbeats. A lease of at least RaftHeartbeatTimeout + RaftElectionTimeout (as
	// in every preset) also keeps followers serving while a crashed leader is replaced.
	LeaseDuration time.Duration
	// ReconcileInterval is how often the coordinator re-checks the membership and the plan
	// when nothing happened (a safety net: changes are acted upon at once). LAN default 1s.
	ReconcileInterval time.Duration
	// JoinRetryInterval is the pause between attempts to join the seeds. LAN default 1s.
	JoinRetryInterval time.Duration
	// BootstrapSettle is how long the members that start a cluster together must see the same
	// members before the first of them founds the cluster. LAN default 1s.
	BootstrapSettle time.Duration
	// RetryInterval is the first pause before a request to the raft leader is retried
	// (doubling up to ten times that). LAN default 50ms.
	RetryInterval time.Duration
	// SuspectBackoff is how long a member that an owner reported unreachable (silent through
	// two waits for its backup acknowledgement, see BackupAckTimeout) is kept out of every partition's
	// backups and copies before the coordinator trusts it again; it doubles at each new report,
	// up to 16 times this. The member keeps the partitions it owns. LAN default 2s.
	SuspectBackoff time.Duration
	// BackupAckTimeout is how long an owner waits for one synchronous backup to acknowledge a
	// write before it suspects the backup. A backup that stays silent through two waits in a
	// row (the second twice as long) is reported unreachable, so that the coordinator can take it out of the
	// partition's backups and the write completes with the remaining replicas; one whose
	// answers keep arriving, late, is slow, not dead: it is not reported, and the owner waits
	// longer for it (twice its slowest recent acknowledgement, up to 4 times this). A batch's
	// wait grows with its bytes too (8 MiB/s on top), so large values on a busy link do not make
	// a live backup look dead. LAN default 500ms.
	BackupAckTimeout time.Duration
}

// LANTimings are the defaults, for members in one data center: memberlist's LAN timings and
// hashicorp/raft's defaults. A crashed member is declared dead within about 5 to 10 seconds
// (about 5.5 in a cluster of three), and its owned partitions are served again by their
// backups about 4.25 seconds later; writes to partitions it backed up wait at most 500ms for it.
// A member may pause (GC, a stalled VM) for about 3 seconds without losing its partitions.
func LANTimings() Timings {
	t := fromControl(control.DefaultTimings())
	t.BackupAckTimeout = engine.DefaultBackupAckTimeout
	return t
}

// LocalTimings are fast timings for members on one machine (tests, demos, a single host),
// stable on a loaded 2-core machine under the race detector. A crashed member is declared dead
// within about 1 to 3 seconds and its owned partitions are served again about 1.55 seconds
// later; writes to partitions it backed up wait at most 250ms for it. A member that pauses for
// more than about a second loses its lease and its partitions, so do not use them across a
// real network.
func LocalTimings() Timings {
	t := fromControl(control.LocalTimings())
	t.BackupAckTimeout = 250 * time.Millisecond
	return t
}

// WANTimings are slow timings for members spread over data centers or a lossy network (round
// trips around 100ms): memberlist's WAN timings and raft about twice as patient as on a LAN. A
// crashed member is treated as failed after about 10 seconds (the raft leader's heartbeats to
// it fail for RaftContactTimeout; gossip alone takes 35 to 40), and its owned partitions are
// served again about 18 to 23 seconds after the crash; writes to partitions it backed up wait
// at most 2 seconds for it. A member may pause for about 5 seconds without losing its
// partitions.
func WANTimings() Timings {
	t := fromControl(control.WANTimings())
	t.BackupAckTimeout = 2 * time.Second
	return t
}

// WithDefaults returns t with every zero field set to its LANTimings value.
func (t Timings) WithDefaults() Timings {
	d := LANTimings()
	for _, f := range []struct{ v, d *time.Duration }{
		{&t.ProbeInterval, &d.ProbeInterval}, {&t.ProbeTimeout, &d.ProbeTimeout},
		{&t.GossipInterval, &d.GossipInterval}, {&t.PushPullInterval, &d.PushPullInterval},
		{&t.GossipTCPTimeout, &d.GossipTCPTimeout},
		{&t.RaftHeartbeatTimeout, &d.RaftHeartbeatTimeout}, {&t.RaftElectionTimeout, &d.RaftElectionTimeout},
		{&t.RaftLeaderLeaseTimeout, &d.RaftLeaderLeaseTimeout}, {&t.RaftCommitTimeout, &d.RaftCommitTimeout},
		{&t.RaftContactTimeout, &d.RaftContactTimeout}, {&t.LeaseDuration, &d.LeaseDuration},
		{&t.ReconcileInterval, &d.ReconcileInterval}, {&t.JoinRetryInterval, &d.JoinRetryInterval},
		{&t.BootstrapSettle, &d.BootstrapSettle}, {&t.RetryInterval, &d.RetryInterval},
		{&t.SuspectBackoff, &d.SuspectBackoff}, {&t.BackupAckTimeout, &d.BackupAckTimeout},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	for _, f := range []struct{ v, d *int }{
		{&t.IndirectChecks, &d.IndirectChecks}, {&t.SuspicionMult, &d.SuspicionMult},
		{&t.SuspicionMaxTimeoutMult, &d.SuspicionMaxTimeoutMult},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return t
}

// fromControl copies the control plane's timings (BackupAckTimeout is the map service's).
func fromControl(c control.Timings) Timings {
	return Timings{
		ProbeInterval:           c.Gossip.ProbeInterval,
		ProbeTimeout:            c.Gossip.ProbeTimeout,
		IndirectChecks:          c.Gossip.IndirectChecks,
		SuspicionMult:           c.Gossip.SuspicionMult,
		SuspicionMaxTimeoutMult: c.Gossip.SuspicionMaxTimeoutMult,
		GossipInterval:          c.Gossip.GossipInterval,
		PushPullInterval:        c.Gossip.PushPullInterval,
		GossipTCPTimeout:        c.Gossip.TCPTimeout,
		RaftHeartbeatTimeout:    c.RaftHeartbeatTimeout,
		RaftElectionTimeout:     c.RaftElectionTimeout,
		RaftLeaderLeaseTimeout:  c.RaftLeaderLeaseTimeout,
		RaftCommitTimeout:       c.RaftCommitTimeout,
		RaftContactTimeout:      c.RaftContactTimeout,
		LeaseDuration:           c.LeaseDuration,
		ReconcileInterval:       c.ReconcileInterval,
		JoinRetryInterval:       c.JoinRetryInterval,
		BootstrapSettle:         c.BootstrapSettle,
		RetryInterval:           c.RetryInterval,
		SuspectBackoff:          c.SuspectBackoff,
	}
}

// control returns the control plane's share of t (after defaults).
func (t Timings) control() control.Timings {
	var c control.Timings
	c.Gossip.ProbeInterval = t.ProbeInterval
	c.Gossip.ProbeTimeout = t.ProbeTimeout
	c.Gossip.IndirectChecks = t.IndirectChecks
	c.Gossip.SuspicionMult = t.SuspicionMult
	c.Gossip.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.Gossip.GossipInterval = t.GossipInterval
	c.Gossip.PushPullInterval = t.PushPullInterval
	c.Gossip.TCPTimeout = t.GossipTCPTimeout
	c.RaftHeartbeatTimeout = t.RaftHeartbeatTimeout
	c.RaftElectionTimeout = t.RaftElectionTimeout
	c.RaftLeaderLeaseTimeout = t.RaftLeaderLeaseTimeout
	c.RaftCommitTimeout = t.RaftCommitTimeout
	c.RaftContactTimeout = t.RaftContactTimeout
	c.LeaseDuration = t.LeaseDuration
	c.ReconcileInterval = t.ReconcileInterval
	c.JoinRetryInterval = t.JoinRetryInterval
	c.BootstrapSettle = t.BootstrapSettle
	c.RetryInterval = t.RetryInterval
	c.SuspectBackoff = t.SuspectBackoff
	return c
}
