package mapstore

import (
	"fmt"
	"time"

	"github.com/gridmap/gridmap/internal/configerr"
)

// Defaults filled in by Config.WithDefaults.
const (
	DefaultBatchSize       = 100
	DefaultBatchBytes      = 64 << 20  // 64 MiB
	DefaultMaxDirtyBytes   = 512 << 20 // 512 MiB
	DefaultMaxDirtyEntries = 1_000_000
	DefaultRetryInitial    = 250 * time.Millisecond
	DefaultRetryMax        = 30 * time.Second
)

// Coalescing says whether write-behind keeps one pending entry per key.
type Coalescing uint8

const (
	// CoalesceDefault is CoalesceOn.
	CoalesceDefault Coalescing = iota
	// CoalesceOn keeps one pending entry per key: the latest value replaces the pending one, which
	// keeps its place and enqueue time, so 1,000 updates during the delay cost one store call.
	CoalesceOn
	// CoalesceOff keeps every write: each value is stored, in order per key.
	CoalesceOff
)

// InitialLoad says when a map with a KeyLoader loads the store's keys.
type InitialLoad uint8

const (
	// LoadLazy (the default) runs the initial load on the map's first use.
	LoadLazy InitialLoad = iota
	// LoadEager runs the initial load when the map is created.
	LoadEager
)

// Config is the store configuration of one map. Zero fields take their defaults, so the zero
// value means write-through with the defaults below. As everywhere in this module, defaults
// come first and Validate checks the result: WithDefaults fills the zero fields in, and
// Validate reports every problem of c.WithDefaults() (so the zero value is valid); the member
// does both for dmap.MapConfig.Persistence.
type Config struct {
	// WriteDelay is how long a written entry stays dirty before it is stored. 0 (the default)
	// means write-through: a write calls the store before it is acknowledged and fails if the
	// store fails. With a delay, writes are acknowledged at once and stored in batches.
	WriteDelay time.Duration
	// BatchSize is the maximum number of entries in one write-behind batch (one StoreAll or
	// DeleteAll call) and the number of keys per LoadAll call. Default 100.
	BatchSize int
	// BatchBytes bounds the bytes (keys plus values) of one write-behind batch; a batch always
	// holds at least one entry, however large. Default 64 MiB.
	BatchBytes int64
	// Coalesce says whether write-behind keeps only the latest value of a key. Default on.
	Coalesce Coalescing
	// InitialLoad says when the map loads the store's keys. Default LoadLazy.
	InitialLoad InitialLoad
	// MaxDirtyBytes bounds the bytes (keys plus values) of dirty entries of this map on one
	// member, backups included. At the limit writers wait, then fail with ErrDirtyLimit when their
	// context ends; dirty entries are never dropped. Default 512 MiB.
	MaxDirtyBytes int64
	// MaxDirtyEntries bounds the number of dirty entries of this map on one member, like
	// MaxDirtyBytes. Default 1,000,000.
	MaxDirtyEntries int64
	// RetryInitial is the wait after the first failed store call of a queue; it doubles after
	// each further failure up to RetryMax. Retries never stop. Default 250ms.
	RetryInitial time.Duration
	// RetryMax caps the wait between retries. Default 30s.
	RetryMax time.Duration
}

// DefaultConfig returns a write-behind-ready configuration with every default filled in and the
// given write delay.
func DefaultConfig(writeDelay time.Duration) Config {
	return Config{WriteDelay: writeDelay}.WithDefaults()
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.Coalesce == CoalesceDefault {
		c.Coalesce = CoalesceOn
	}
	if c.MaxDirtyBytes == 0 {
		c.MaxDirtyBytes = DefaultMaxDirtyBytes
	}
	if c.MaxDirtyEntries == 0 {
		c.MaxDirtyEntries = DefaultMaxDirtyEntries
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryInitial)
	}
	return c
}

// WriteThrough reports whether writes call the store before they are acknowledged.
func (c Config) WriteThrough() bool { return c.WriteDelay == 0 }

// Validate reports every problem of c.WithDefaults() in one error wrapping ErrInvalidConfig,
// or nil. A zero field is never a problem: it takes its default.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.WriteDelay < 0 {
		bad("WriteDelay %v is negative", c.WriteDelay)
	}
	if c.BatchSize < 1 {
		bad("BatchSize %d must be at least 1", c.BatchSize)
	}
	if c.BatchBytes < 1 {
		bad("BatchBytes %d must be at least 1", c.BatchBytes)
	}
	if c.Coalesce > CoalesceOff {
		bad("Coalesce %d is not a known mode", c.Coalesce)
	}
	if c.InitialLoad > LoadEager {
		bad("InitialLoad %d is not a known mode", c.InitialLoad)
	}
	if c.MaxDirtyBytes < 1 {
		bad("MaxDirtyBytes %d must be at least 1", c.MaxDirtyBytes)
	}
	if c.MaxDirtyEntries < 1 {
		bad("MaxDirtyEntries %d must be at least 1", c.MaxDirtyEntries)
	}
	if c.RetryInitial <= 0 {
		bad("RetryInitial %v must be positive", c.RetryInitial)
	}
	if c.RetryMax < c.RetryInitial {
		bad("RetryMax %v is below RetryInitial %v", c.RetryMax, c.RetryInitial)
	}
	if c.MaxDirtyBytes > 0 && c.BatchBytes > c.MaxDirtyBytes {
		bad("BatchBytes %d exceeds MaxDirtyBytes %d", c.BatchBytes, c.MaxDirtyBytes)
	}
	return configerr.Join(ErrInvalidConfig, errs)
}

// RetryDelay is the wait before the next try after failures (>= 1) failed store calls in a row:
// RetryInitial, doubling per further failure, at most RetryMax.
func (c Config) RetryDelay(failures int) time.Duration {
	d := c.RetryInitial
	for i := 1; i < failures && d < c.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.RetryMax)
}
