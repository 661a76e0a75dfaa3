package gridmap

// RestorePolicy says what the restore of a restarted cluster does once Config.RestoreTimeout
// passed while data folders that may hold the newest copies of some partitions are absent
// (docs/restart.md, "Which folders a restore waits for"). The names follow Hazelcast's
// cluster data recovery policies.
type RestorePolicy int

const (
	// RestoreFullOnly (the default) never restores a partition from a copy it cannot show to
	// be the newest: operations on it fail with dmap.ErrRestoreIncomplete until the absent
	// folders' members start (or Cluster.AllowPartialRestore).
	RestoreFullOnly RestorePolicy = iota
	// RestorePartialMostRecent restores such a partition from the newest copy the present
	// folders hold, and logs a warning naming the absent folders. Writes that only the absent
	// folders held are lost, and those folders' copies lose to the restored ones at the next
	// restart (they belong to an earlier life).
	RestorePartialMostRecent
)
