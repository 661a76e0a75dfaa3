package listener

import (
	"fmt"

	"github.com/gridmap/gridmap/partition"
)

// Kind says what happened to an entry, or that events were missed.
type Kind uint8

const (
	// Added: a key that had no live entry received a value (NewValue).
	Added Kind = iota + 1
	// Updated: a live entry's value (OldValue) was replaced by NewValue.
	Updated
	// Removed: an entry (OldValue) was deleted by a user operation (Delete, Clear, a transaction).
	Removed
	// Evicted: a clean entry (OldValue) was dropped to stay within the memory budget. It is still
	// in the store and may be loaded again.
	Evicted
	// Expired: an entry (OldValue) reached the end of its time to live and was removed.
	Expired
	// Loaded: an entry (NewValue) was loaded from the map's store (read-through or initial load).
	Loaded
	// Overflow is not an entry event: the listener's queue was full and Event.Missed events of
	// its map were dropped at this point of the stream. Only Map, Member and Missed are set;
	// Partition is -1.
	// Every dropped event is reported by exactly one Overflow notice, which arrives before the
	// next delivered event (or as soon as the queue has drained), never later.
	Overflow
)

var kindNames = [...]string{
	Added:    "Added",
	Updated:  "Updated",
	Removed:  "Removed",
	Evicted:  "Evicted",
	Expired:  "Expired",
	Loaded:   "Loaded",
	Overflow: "Overflow",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Event is one change of one entry as observed on the member that owns it, or (Kind Overflow)
// a notice that events were missed.
//
// Slices: the publisher hands Key, OldValue and NewValue to the dispatcher and never modifies
// them afterwards (gridmap's records are immutable, so dmap passes them without copying). Every
// listener of the map receives the same backing arrays: a listener may keep them for as long
// as it likes but must not modify them.
type Event struct {
	// Map is the name of the map the entry belongs to.
	Map string
	// Kind says what happened.
	Kind Kind
	// Key is the entry's key as encoded by the map (dmap decodes it into the map's key type).
	Key []byte
	// Partition is the partition of Key.
	Partition partition.ID
	// Member is the member the change happened on: the partition's owner at that moment.
	Member partition.MemberID
	// Seq is the partition's sequence number of the change. Within one partition it grows with
	// every write, so (Partition, Seq) orders the events of a key; after a failover or a
	// migration the new owner continues the sequence, and an event in flight may be delivered
	// again with the same Seq.
	Seq uint64
	// OldValue is the value before the change (Updated, Removed, Evicted, Expired). It is nil
	// unless the listener was registered with Options.IncludeValues.
	OldValue []byte
	// NewValue is the value after the change (Added, Updated, Loaded). It is nil unless the
	// listener was registered with Options.IncludeValues.
	NewValue []byte
	// Missed is the number of events dropped, for Kind Overflow only; zero otherwise.
	Missed uint64
}

// String formats the event for logs and examples; values are shown by length only.
func (e Event) String() string {
	if e.Kind == Overflow {
		return fmt.Sprintf("%s %s missed=%d", e.Map, e.Kind, e.Missed)
	}
	return fmt.Sprintf("%s %s key=%q partition=%d seq=%d old=%dB new=%dB",
		e.Map, e.Kind, e.Key, e.Partition, e.Seq, len(e.OldValue), len(e.NewValue))
}
