package engine

import (
	"context"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Cluster is the map service's view of the control plane (*control.Node implements it).
// Every method may be called from any goroutine; none of them blocks except ReportSynced.
type Cluster interface {
	// LocalID is this member's identity.
	LocalID() partition.MemberID
	// Table returns the latest committed partition table. The caller must not modify it.
	Table() *partition.Table
	// Watch returns the latest table and a channel closed once a newer one is committed.
	Watch() (*partition.Table, <-chan struct{})
	// MemberAddr resolves a member's transport address.
	MemberAddr(id partition.MemberID) (string, bool)
	// LeaseValid reports whether this member is in contact with the raft majority, and so may
	// serve operations on the partitions it owns.
	LeaseValid() bool
	// ReportSynced tells the coordinator that pending member m holds a full copy of partition p
	// (copied by this member, its owner at table epoch epoch, the table the copy began under:
	// a copy begun before m's current stint as pending does not count, see
	// partition.CompleteCopy).
	ReportSynced(ctx context.Context, p partition.ID, m partition.MemberID, epoch uint64) error
	// ReportUnreachable tells the coordinator that member m did not acknowledge a backup or
	// copy in time (Config.BackupAckTimeout), so that it can take m out of every partition's
	// backups and pending copies at once instead of waiting for failure detection. It never
	// blocks: the report is sent in the background, and repeated reports about one member
	// coalesce. The coordinator decides; m's owned partitions are not reassigned by a report.
	ReportUnreachable(m partition.MemberID)
}

// Caller sends a request to a member and returns its response (*transport.Client implements it).
type Caller interface {
	Call(ctx context.Context, addr string, req transport.Message) (transport.Message, error)
	// CallTimeout is Call also bounded by timeout, which costs no timer per call.
	CallTimeout(ctx context.Context, addr string, req transport.Message, timeout time.Duration) (transport.Message, error)
	// CallAsync starts a call without blocking and reports whether it did; done then receives
	// the answer exactly once and must not block (see transport.Client.CallAsync).
	CallAsync(ctx context.Context, addr string, req transport.Message, timeout time.Duration, done transport.Callback) bool
}

// lastHeardCaller is a Caller that knows when a peer's answers last arrived, late ones to calls
// that timed out included (transport.Client, transport.MemCaller): owners tell slow backups
// from dead ones by it (ackwatch.go). A Caller without it is judged by its answers only.
type lastHeardCaller interface {
	LastHeard(addr string) (time.Time, bool)
}

// Registrar installs message handlers (*transport.Server implements it).
type Registrar interface {
	Handle(t transport.MsgType, h transport.Handler)
}
