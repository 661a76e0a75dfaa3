package engine

import (
	"fmt"
	"github.com/gridmap/gridmap/internal/replicadisk"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/gridmap/gridmap/internal/configerr"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultOperationTimeout        = 30 * time.Second
	DefaultMaxValueSize            = 63 << 20 // fits the transport's default 64 MiB frame with room for headers
	DefaultMigrationChunkSize      = 4 << 20
	DefaultMaxConcurrentMigrations = 4
	DefaultExpiryInterval          = time.Second
	DefaultBackupAckTimeout        = 500 * time.Millisecond
)

// Config configures a member's map service. Zero fields take the documented defaults
// (WithDefaults); Validate reports every problem of c.WithDefaults(); NewService does both.
// The partition count is not among them: it is the cluster's (the length of its table), so
// that the map service and the control plane cannot disagree on it.
type Config struct {
	// AsyncBackups makes writes return once the owner applied them; backups are updated in the
	// background, in order per partition. Default false: a write waits for every backup.
	//
	// With AsyncBackups, an acknowledged write can be lost when its owner dies before the
	// backups caught up, reads on the owner and listeners' events see writes no backup holds
	// yet (an event still comes once reads see its write), and a write retried after its owner
	// died may be applied again: the guarantees of synchronous backups (durable
	// acknowledgement, reads and events that never show a write that could still die with its
	// owner, exactly-once retries across a failover) are given up for latency.
	AsyncBackups bool
	// OperationTimeout bounds an operation whose context has no deadline. Default 30s.
	OperationTimeout time.Duration
	// MaxValueSize is the largest encoded key plus value accepted, in bytes. Default 63 MiB.
	MaxValueSize int
	// BackupAckTimeout is how long an owner waits for one synchronous backup (or pending copy)
	// to acknowledge a write (or a copy's start) before it suspects the member. A member silent
	// through two waits in a row (the second twice as long) is reported unreachable to the
	// coordinator, which can then take it out of the partition's backups; the write waits on
	// for the remaining replicas (up to its deadline). It bounds how long a stopped or cut-off
	// member holds a partition's writers: about three BackupAckTimeouts plus one table commit
	// (a crashed process's connection fails at once). A member whose answers keep arriving,
	// late, is slow, not dead: it is not reported, and the wait for it adapts to its recent
	// acknowledgements, up to 4 times BackupAckTimeout, for at most 8 BackupAckTimeouts of
	// failed backups (ackwatch.go). A batch's attempt gets, on top, the time its bytes take at
	// 8 MiB/s (a 4 MB value: 0.5 s more), so large values do not make a live backup look dead.
	// Default 500ms.
	BackupAckTimeout time.Duration
	// MigrationChunkSize is the approximate size in bytes of one message of a partition copy.
	// Default 4 MiB.
	MigrationChunkSize int
	// MaxConcurrentMigrations bounds the partition copies this member sends at once. Default 4.
	MaxConcurrentMigrations int
	// ExpiryInterval is how often expired entries are swept. Default 1s.
	ExpiryInterval time.Duration
	// Logger receives the service's logs. Default: discard.
	Logger *slog.Logger
	// Now is the wall clock used for TTLs and write delays. Default time.Now.
	Now func() time.Time
	// MemoryBudget bounds the memory this member holds, in bytes: an exact running count of its
	// records (keys, values and recordOverhead each, owned, backed up or being received) and of
	// the events its listener queues hold. Clean entries of maps with a loader are evicted, and
	// entries of maps persisting to Disk paged out (paging.go), least recently used first, above
	// 95% of it; writes that would grow memory past it wait for room, then fail with
	// ErrMemoryLimit (memory.go). 0 (the default) means no budget.
	MemoryBudget int64
	// Maps configures maps by name: their store, loader and write-behind settings. Maps not
	// listed live in memory only. Every member must have the same Maps.
	Maps map[string]MapConfig
	// StructureMaps configures the maps of façades' structures (a queue's store, say), keyed by
	// StructureMapName, the way Maps does for user maps. Every member must have the same ones.
	StructureMaps map[string]MapConfig
	// Disk is the member's data folder (see docs/restart.md). With it, every user map without
	// a Store or Loader in Maps persists to it on every replica, and a cluster started again
	// on the folders restores those maps from the newest copies. The caller opens it before
	// NewService and closes it after Close. Default nil: such maps live in memory only.
	Disk *replicadisk.Disk
	// RestoreMembers is how many members the partition table must name before an owner
	// restores a partition from the data folders. Correctness does not depend on it (the
	// restore also waits for the folders the present ones remember, folders.go); it spares a
	// cluster started together the questions to the first members. Default 1. The member
	// passes its ExpectMembers.
	RestoreMembers int
	// RestoreTimeout bounds, from the member's start, how long a restore waits for absent data
	// folders that the present ones remember (folders.go): then the partition's operations fail
	// with ErrRestoreIncomplete, or with PartialRestore it is restored from the newest copy
	// present. Default DefaultRestoreTimeout.
	RestoreTimeout time.Duration
	// PartialRestore restores, once RestoreTimeout passed, a partition from the newest copy the
	// present folders hold although remembered folders are absent. Default false: refuse.
	PartialRestore bool
}

// DefaultRestoreTimeout is Config.RestoreTimeout's default: time enough to start every member
// of a cluster by hand.
const DefaultRestoreTimeout = 5 * time.Minute

// withDefaults is WithDefaults (the service's name for it).
func (c Config) withDefaults() Config { return c.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.OperationTimeout == 0 {
		c.OperationTimeout = DefaultOperationTimeout
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.BackupAckTimeout == 0 {
		c.BackupAckTimeout = DefaultBackupAckTimeout
	}
	if c.MigrationChunkSize == 0 {
		c.MigrationChunkSize = DefaultMigrationChunkSize
	}
	if c.MaxConcurrentMigrations == 0 {
		c.MaxConcurrentMigrations = DefaultMaxConcurrentMigrations
	}
	if c.ExpiryInterval == 0 {
		c.ExpiryInterval = DefaultExpiryInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RestoreMembers == 0 {
		c.RestoreMembers = 1
	}
	if c.RestoreTimeout == 0 {
		c.RestoreTimeout = DefaultRestoreTimeout
	}
	return c
}

// Validate reports every problem of c.WithDefaults(), each map's (MapConfig.Validate) included
// under its name, in one error wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.OperationTimeout < 0 {
		errs = append(errs, fmt.Errorf("OperationTimeout must not be negative, got %v", c.OperationTimeout))
	}
	if c.MaxValueSize < 0 {
		errs = append(errs, fmt.Errorf("MaxValueSize must not be negative, got %d", c.MaxValueSize))
	}
	if c.BackupAckTimeout < 0 {
		errs = append(errs, fmt.Errorf("BackupAckTimeout must not be negative, got %v", c.BackupAckTimeout))
	}
	if c.MigrationChunkSize < 0 {
		errs = append(errs, fmt.Errorf("MigrationChunkSize must not be negative, got %d", c.MigrationChunkSize))
	}
	if c.MemoryBudget < 0 {
		errs = append(errs, fmt.Errorf("MemoryBudget must not be negative, got %d", c.MemoryBudget))
	}
	if c.MaxConcurrentMigrations < 0 {
		errs = append(errs, fmt.Errorf("MaxConcurrentMigrations must not be negative, got %d", c.MaxConcurrentMigrations))
	}
	if c.RestoreTimeout < 0 {
		errs = append(errs, fmt.Errorf("RestoreTimeout must not be negative, got %v", c.RestoreTimeout))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Maps)) {
		prefix := fmt.Sprintf("Maps[%q]: ", name)
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("%smap names must not be empty", prefix))
		case name[0] == 0:
			errs = append(errs, fmt.Errorf("%s%w", prefix, errReservedName))
		}
		errs = append(errs, configerr.Prefix(prefix, c.Maps[name].problems())...)
	}
	for _, name := range slices.Sorted(maps.Keys(c.StructureMaps)) {
		prefix := fmt.Sprintf("StructureMaps[%q]: ", name)
		if !IsStructureMapName(name) {
			errs = append(errs, fmt.Errorf("%snot a structure map name (see StructureMapName)", prefix))
		}
		errs = append(errs, configerr.Prefix(prefix, c.StructureMaps[name].problems())...)
	}
	return configerr.Join(ErrInvalidConfig, errs)
}

// WithDefaults returns c with mapstore's defaults filled into Persistence (Store and Loader have
// none: nil means none).
func (c MapConfig) WithDefaults() MapConfig {
	c.Persistence = c.Persistence.WithDefaults()
	return c
}
