package control

import "errors"

var (
	// ErrConfig wraps every problem Config.Validate finds.
	ErrConfig = errors.New("control: invalid config")
	// ErrClosed is returned by calls on a Node after Close or Leave.
	ErrClosed = errors.New("control: node closed")
	// ErrStale is returned by ReportSynced when the report no longer applies:
	// the member is not pending for the partition in the committed table, or
	// the reporter is not the partition's owner any more; and to an
	// unreachable report (see ReportUnreachable) that names a member the
	// table does not name, or the reporter itself.
	ErrStale = errors.New("control: stale sync report")
	// ErrNotLeader is returned (internally, and by handlers to callers that
	// then retry) when a request reaches a member that is not the raft
	// leader.
	ErrNotLeader = errors.New("control: not the raft leader")
	// ErrNotDrained is returned when a leaving member asks to be removed
	// while the table still assigns it partitions.
	ErrNotDrained = errors.New("control: member still holds partitions")
	// ErrNotMember is returned to a member that asks the leader to confirm
	// its lease, or reports another member unreachable, while it is not (or
	// not yet fully) back in the raft configuration, or (a report) while it
	// is itself suspect.
	ErrNotMember = errors.New("control: not a raft member")
	// ErrNoPartition is returned by ResetLost when it names a partition
	// out of range.
	ErrNoPartition = errors.New("control: no such partition")
	// ErrRemote wraps an unexpected error reported by the leader.
	ErrRemote = errors.New("control: remote error")
	// ErrJoinRefused is returned by WaitReady when the cluster this member
	// reached refused it: another cluster name or join secret (see
	// Config.Admission), or, with Config.VerifyTransport, a TLS handshake
	// with a member of the cluster failed (certificate not signed by the
	// cluster's CA).
	ErrJoinRefused = errors.New("control: join refused by the cluster")
	// ErrQuorumIntact is returned by RecoverQuorum when raft does not need
	// recovering: this member knows a raft leader, or a majority of the raft
	// voters is alive according to failure detection.
	ErrQuorumIntact = errors.New("control: raft quorum is intact; recovery refused")
)
