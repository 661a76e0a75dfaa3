package dmap

import (
	"context"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// PartitionEventKind says what happened to a partition: MigrationStarted, MigrationFinished or
// PartitionLost (see partition.EventKind for what each means).
type PartitionEventKind = partition.EventKind

const (
	MigrationStarted  = partition.MigrationStarted
	MigrationFinished = partition.MigrationFinished
	PartitionLost     = partition.Lost
)

// PartitionEvent is a change of a partition's placement, derived from the partition tables this
// member sees (see partition.Event).
type PartitionEvent = partition.Event

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
		reg, err = s.e.AddPartitionListener(ctx, fn)
	}
	if err != nil {
		return nil, err
	}
	return &ListenerHandle{remove: reg.Remove, stats: reg.Stats}, nil
}
