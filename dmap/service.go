package dmap

import (
	"time"

	"github.com/gridmap/gridmap/internal/engine"
)

// Service is a member's map service as its users see it: the member-wide calls that are not
// about one map (transactions, processor and predicate registration, partition listeners,
// persistence statistics). gridmap.Member.Maps returns it; New opens a map on it. It cannot
// stop the member's maps: the member does that when it closes.
type Service struct {
	e *engine.Service
}

// WrapEngine returns the user-facing view of a member's map engine. It is how the gridmap
// package builds a Member's Service; applications get theirs from gridmap.Member.Maps and never
// call it (the engine is internal to gridmap).
func WrapEngine(e *engine.Service) *Service {
	if e == nil {
		return nil
	}
	return &Service{e: e}
}

// PartitionsLost returns how many partition losses this member has seen (the PartitionLost
// events, whether or not a listener was registered): the count for metrics. Each loss is seen
// once by every member.
func (s *Service) PartitionsLost() uint64 { return s.e.PartitionsLost() }

// PersistenceStats describes a map's store on this member: its write-behind queues on the
// partitions this member owns, and its store calls.
type PersistenceStats struct {
	// DirtyEntries and DirtyBytes are what the write-behind queues hold, not yet stored.
	DirtyEntries int
	DirtyBytes   int64
	// OldestDirty is the age of the oldest entry still to store.
	OldestDirty time.Duration
	// StoreCalls and StoreErrors count the calls to the store and the failed ones.
	StoreCalls  uint64
	StoreErrors uint64
	// Retries counts the batches handed to the store again after a failure.
	Retries uint64
	// LastError is the store's latest error and LastErrorAt when it happened (nil: none yet).
	LastError   error
	LastErrorAt time.Time
	// Rejected counts the entries the store refused for good (mapstore.ErrRejected, such as a
	// document the database's mapping refuses): they are not stored and not retried; the map
	// keeps them in memory. LastRejected is the last such refusal and LastRejectedAt its time.
	Rejected       uint64
	LastRejected   error
	LastRejectedAt time.Time
}

// PersistenceStats returns the store statistics of a map on this member.
func (s *Service) PersistenceStats(mapName string) PersistenceStats {
	return PersistenceStats(s.e.PersistenceStats(mapName))
}
