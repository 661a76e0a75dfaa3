package partition

// EventKind says what happened to a partition.
type EventKind uint8

const (
	// MigrationStarted: a copy of the partition involving this member began (this member, its
	// owner, sends a copy to a pending member, or this member is receiving one).
	MigrationStarted EventKind = iota + 1
	// MigrationFinished: no copy of the partition involving this member is pending any more
	// (it completed, or its target went away). Owner tells who owns the partition now. When a
	// hand-off to or from this member began and ended between two tables this member saw,
	// both MigrationStarted and MigrationFinished are reported when it sees the second one.
	MigrationFinished
	// Lost: every replica of the partition died before its data could be copied
	// elsewhere (a member still receiving a copy is not a replica), so its entries are gone;
	// map operations on it fail with dmap.ErrPartitionLost until it is reset (unless the cluster
	// re-creates lost partitions empty). It is derived from the partition's LostAt epoch
	// growing, which every member sees even when it skipped the table of the loss: every member
	// reports each loss exactly once. An application may resync the entries from its source of
	// truth.
	Lost
)

func (k EventKind) String() string {
	switch k {
	case MigrationStarted:
		return "MigrationStarted"
	case MigrationFinished:
		return "MigrationFinished"
	case Lost:
		return "PartitionLost"
	}
	return "EventKind(?)"
}

// Event is a change of a partition's placement, derived from the partition tables a member
// sees. The map service reports them to partition listeners (dmap.PartitionEvent is this type).
type Event struct {
	Kind      EventKind
	Partition ID
	// Epoch is the epoch of the table the change was seen in.
	Epoch uint64
	// Owner is the partition's owner in that table ("" when it has none).
	Owner MemberID
	// PreviousOwner is its owner in the table before.
	PreviousOwner MemberID
}
