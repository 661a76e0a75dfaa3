package dmap

import (
	"context"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// PartitionEventKind says what happened to a partition.
type PartitionEventKind uint8

const (
	// MigrationStarted: a copy of the partition involving this member began (this member, its
	// owner, sends a copy to a pending member, or this member is receiving one).
	MigrationStarted PartitionEventKind = iota + 1
	// MigrationFinished: no copy of the partition involving this member is pending any more
	// (it completed, or its target went away). Owner tells who owns the partition now. When a
	// hand-off to or from this member began and ended between two tables this member saw,
	// both MigrationStarted and MigrationFinished are reported when it sees the second one.
	MigrationFinished
	// PartitionLost: every replica of the partition died before its data could be copied
	// elsewhere (a member still receiving a copy is not a replica), so its entries are gone;
	// operations on it fail with ErrPartitionLost until it is reset (unless the cluster
	// re-creates lost partitions empty). It is derived from the partition's LostAt epoch
	// growing, which every member sees even when it skipped the table of the loss: every member
	// reports each loss exactly once. An application may resync the entries from its source of
	// truth.
	PartitionLost
)

func (k PartitionEventKind) String() string {
	switch k {
	case MigrationStarted:
		return "MigrationStarted"
	case MigrationFinished:
		return "MigrationFinished"
	case PartitionLost:
		return "PartitionLost"
	}
	return "PartitionEventKind(?)"
}

// PartitionEvent is a change of a partition's placement, derived from the partition tables this
// member sees.
type PartitionEvent struct {
	Kind      PartitionEventKind
	Partition partition.ID
	// Epoch is the epoch of the table the change was seen in.
	Epoch uint64
	// Owner is the partition's owner in that table ("" when it has none).
	Owner partition.MemberID
	// PreviousOwner is its owner in the table before.
	PreviousOwner partition.MemberID
}

// AddPartitionListener registers fn for the partition events of this member. fn is called on
// one goroutine of the service, never concurrently, in the order the tables were committed; it
// must not block for long (a listener that does may see several table changes merged into
// one, so no event is queued or dropped: Stats().Missed and Queued stay 0). Remove on the
// returned handle ends it: after Remove returns, fn is called at most once more, for a
// delivery already under way (Remove may be called from within fn).
//
// Every listener registration of gridmap has this shape, (ctx, fn, ...) (*ListenerHandle,
// error): registering here blocks on nothing, so ctx only refuses a context that has already
// ended (ErrTimeout wrapping ctx.Err(), nothing registered), as AddEntryListener does when
// ctx ends before every member has its registration. A nil fn is ErrInvalidConfig, a closed
// service ErrClosed.
func (s *Service) AddPartitionListener(ctx context.Context, fn func(PartitionEvent)) (*ListenerHandle, error) {
	var reg engine.ListenerReg
	var err error
	if fn == nil {
		reg, err = s.e.AddPartitionListener(ctx, nil)
	} else {
		reg, err = s.e.AddPartitionListener(ctx, func(ev engine.PartitionEvent) {
			fn(PartitionEvent{Kind: PartitionEventKind(ev.Kind), Partition: ev.Partition, Epoch: ev.Epoch, Owner: ev.Owner, PreviousOwner: ev.PreviousOwner})
		})
	}
	if err != nil {
		return nil, err
	}
	return &ListenerHandle{remove: reg.Remove, stats: reg.Stats}, nil
}
