package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// The partition events are the public partition package's; these names keep the engine's code
// and the dmap façade on one type.
type (
	PartitionEventKind = partition.EventKind
	PartitionEvent     = partition.Event
)

const (
	MigrationStarted  = partition.MigrationStarted
	MigrationFinished = partition.MigrationFinished
	PartitionLost     = partition.Lost
)

// partitionListeners holds a member's partition listeners.
type partitionListeners struct {
	mu   sync.Mutex
	next int
	regs map[int]*partitionListener
	// epoch is the epoch of the latest table whose events were delivered.
	epoch atomic.Uint64
	// lost counts the PartitionLost events derived (PartitionsLost).
	lost atomic.Uint64
}

// PartitionsLost returns how many partition losses this member has seen (the PartitionLost
// events, whether or not a listener was registered): the count for metrics. Each loss is seen
// once by every member.
func (s *Service) PartitionsLost() uint64 { return s.events.parts.lost.Load() }

// partitionListener is one registration of AddPartitionListener.
type partitionListener struct {
	fn        func(PartitionEvent)
	removed   atomic.Bool
	delivered atomic.Uint64
}

// AddPartitionListener registers fn for the partition events of this member (see
// dmap.Service.AddPartitionListener). fn is called on one goroutine of the service, never
// concurrently, in the order the tables were committed; no event is queued or dropped. After
// Remove returns, fn is called at most once more, for a delivery already under way.
func (s *Service) AddPartitionListener(ctx context.Context, fn func(PartitionEvent)) (ListenerReg, error) {
	if err := s.CheckRegistration(ctx, fn == nil); err != nil {
		return ListenerReg{}, err
	}
	pl := &s.events.parts
	reg := &partitionListener{fn: fn}
	pl.mu.Lock()
	if pl.regs == nil {
		pl.regs = make(map[int]*partitionListener)
	}
	id := pl.next
	pl.next++
	pl.regs[id] = reg
	pl.mu.Unlock()
	return ListenerReg{
		Remove: func() {
			reg.removed.Store(true)
			pl.mu.Lock()
			delete(pl.regs, id)
			pl.mu.Unlock()
		},
		Stats: func() listener.Stats { return listener.Stats{Delivered: reg.delivered.Load()} },
	}, nil
}

// CheckRegistration is the check every listener registration starts with: a listener to call
// (nilFn false), a context that has not ended, a service that is open.
func (s *Service) CheckRegistration(ctx context.Context, nilFn bool) error {
	if nilFn {
		return fmt.Errorf("%w: nil listener", ErrInvalidConfig)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: registering a listener: %w", ErrTimeout, err)
	}
	if s.closed() {
		return ErrClosed
	}
	return nil
}

// runPartitionEvents watches the table and tells the partition listeners what changed.
// prev is the table the service started with.
func (s *Service) runPartitionEvents(prev *partition.Table, changed <-chan struct{}) {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-changed:
		}
		var t *partition.Table
		t, changed = s.cluster.Watch()
		evs := partitionChanges(prev, t, s.self)
		prev = t
		for _, ev := range evs {
			if ev.Kind == PartitionLost {
				s.events.parts.lost.Add(1)
			}
		}
		if len(evs) == 0 {
			s.events.parts.epoch.Store(t.Epoch)
			continue
		}
		pl := &s.events.parts
		pl.mu.Lock()
		regs := make([]*partitionListener, 0, len(pl.regs))
		ids := make([]int, 0, len(pl.regs))
		for id := range pl.regs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			regs = append(regs, pl.regs[id])
		}
		pl.mu.Unlock()
		for _, ev := range evs {
			for _, reg := range regs {
				if reg.removed.Load() {
					continue
				}
				reg.delivered.Add(1)
				reg.fn(ev)
			}
		}
		pl.epoch.Store(t.Epoch)
	}
}

// partitionChanges derives the partition events of member self between two tables. It is plain
// logic: no clocks, no I/O.
func partitionChanges(prev, cur *partition.Table, self partition.MemberID) []PartitionEvent {
	if prev == nil || cur == nil || cur.Epoch <= prev.Epoch || prev.Count() != cur.Count() {
		return nil
	}
	var out []PartitionEvent
	for i := range cur.Partitions {
		p := partition.ID(i)
		ev := PartitionEvent{Partition: p, Epoch: cur.Epoch, Owner: cur.Owner(p), PreviousOwner: prev.Owner(p)}
		lost := cur.Partitions[i].LostAt > prev.Partitions[i].LostAt
		was, is := migrating(prev, p, self), migrating(cur, p, self)
		switch {
		case !was && is:
			ev.Kind = MigrationStarted
			out = append(out, ev)
		case was && !is:
			ev.Kind = MigrationFinished
			out = append(out, ev)
		case !lost && ev.Owner != ev.PreviousOwner && ev.PreviousOwner != "" && (ev.Owner == self || ev.PreviousOwner == self):
			// The whole hand-off happened between two tables this member saw: report both ends.
			ev.Kind = MigrationStarted
			out = append(out, ev)
			ev.Kind = MigrationFinished
			out = append(out, ev)
		}
		if lost {
			ev.Kind = PartitionLost
			out = append(out, ev)
		}
	}
	return out
}

// migrating reports whether a copy of p involving self is pending in t.
func migrating(t *partition.Table, p partition.ID, self partition.MemberID) bool {
	return (t.Owner(p) == self && len(t.Partitions[p].Pending) > 0) || t.IsPending(p, self)
}
