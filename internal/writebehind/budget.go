package writebehind

import (
	"context"
	"fmt"
	"sync"

	"github.com/gridmap/gridmap/mapstore"
)

// Budget bounds the dirty data of one map on one member: every Queue of the map (owned
// partitions and backups) charges its entries to the same Budget. It is safe for concurrent use.
//
// Charging never fails: a backup must accept what its owner already applied, and dirty entries
// are never dropped. Writers on an owner call Wait before applying a write, which is where
// back-pressure happens; so usage can exceed a limit by the writes admitted concurrently.
type Budget struct {
	maxBytes, maxEntries int64

	mu      sync.Mutex
	bytes   int64
	entries int64
	freed   chan struct{} // closed (and replaced) when usage drops while someone waits
}

// NewBudget returns a budget of maxBytes and maxEntries (both at least 1; smaller values are
// raised to 1).
func NewBudget(maxBytes, maxEntries int64) *Budget {
	return &Budget{maxBytes: max(maxBytes, 1), maxEntries: max(maxEntries, 1)}
}

// Full reports whether dirty data has reached either limit.
func (b *Budget) Full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.full()
}

func (b *Budget) full() bool { return b.bytes >= b.maxBytes || b.entries >= b.maxEntries }

// Usage returns the dirty bytes and entries charged.
func (b *Budget) Usage() (bytes, entries int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes, b.entries
}

// Wait blocks until the budget is below both limits or ctx ends; then it returns an error
// wrapping mapstore.ErrDirtyLimit and the context's error.
func (b *Budget) Wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		if !b.full() {
			b.mu.Unlock()
			return nil
		}
		if b.freed == nil {
			b.freed = make(chan struct{})
		}
		ch := b.freed
		used, n := b.bytes, b.entries
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %d bytes in %d entries dirty (limits %d bytes, %d entries): %w",
				mapstore.ErrDirtyLimit, used, n, b.maxBytes, b.maxEntries, ctx.Err())
		}
	}
}

// charge adds (or, with negative arguments, releases) bytes and entries.
func (b *Budget) charge(bytes, entries int64) {
	if b == nil || (bytes == 0 && entries == 0) {
		return
	}
	b.mu.Lock()
	b.bytes += bytes
	b.entries += entries
	if (bytes < 0 || entries < 0) && b.freed != nil && !b.full() {
		close(b.freed)
		b.freed = nil
	}
	b.mu.Unlock()
}
