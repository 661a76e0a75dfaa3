package dmap

import (
	"slices"
	"sync"
	"sync/atomic"

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
	// PartitionLost: no live copy of the partition is left: none of the members that held a
	// complete copy in the previous table this member saw (replicas, and pending members, which
	// are promoted only with a complete copy) is in the new table any more. Every member
	// reports it. Tables are watched, not logged: if a hand-off and the death of its source
	// both happen between two tables this member sees, the loss reported is a false alarm
	// (the application resyncs needlessly); a real loss is never missed. Its entries are gone (an application may resync them
	// from its source of truth). Every member reports it.
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

// partitionListeners holds a member's partition listeners.
type partitionListeners struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(PartitionEvent)
	// epoch is the epoch of the latest table whose events were delivered.
	epoch atomic.Uint64
}

// AddPartitionListener registers fn for the partition events of this member. fn is called on
// one goroutine of the service, never concurrently, in the order the tables were committed; it
// must not block for long (a listener that does may see several table changes merged into
// one). The returned function removes the listener.
func (s *Service) AddPartitionListener(fn func(PartitionEvent)) (remove func()) {
	pl := &s.events.parts
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.fns == nil {
		pl.fns = make(map[int]func(PartitionEvent))
	}
	id := pl.next
	pl.next++
	pl.fns[id] = fn
	return func() {
		pl.mu.Lock()
		delete(pl.fns, id)
		pl.mu.Unlock()
	}
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
		if len(evs) == 0 {
			s.events.parts.epoch.Store(t.Epoch)
			continue
		}
		pl := &s.events.parts
		pl.mu.Lock()
		fns := make([]func(PartitionEvent), 0, len(pl.fns))
		ids := make([]int, 0, len(pl.fns))
		for id := range pl.fns {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fns = append(fns, pl.fns[id])
		}
		pl.mu.Unlock()
		for _, ev := range evs {
			for _, fn := range fns {
				fn(ev)
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
	alive := make(map[partition.MemberID]bool)
	for _, m := range cur.Members() {
		alive[m] = true
	}
	for i := range cur.Partitions {
		p := partition.ID(i)
		ev := PartitionEvent{Partition: p, Epoch: cur.Epoch, Owner: cur.Owner(p), PreviousOwner: prev.Owner(p)}
		// Members that held a complete copy: the replicas, and pending members (a pending
		// member is only promoted once its copy is complete).
		before := slices.Clone(prev.Partitions[i].Replicas)
		for _, pm := range prev.Partitions[i].Pending {
			before = append(before, pm.Member)
		}
		// A holder still in the table is alive: the planner never drops a live copy without a
		// hand-off, which this member may merely have missed (tables seen are not every table
		// committed). Lost means no holder is a replica any more and none is alive.
		lost := len(prev.Partitions[i].Replicas) > 0 && !slices.ContainsFunc(before, func(m partition.MemberID) bool {
			return alive[m]
		})
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
