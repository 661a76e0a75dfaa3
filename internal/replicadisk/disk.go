// Package replicadisk keeps, in a member's data folder, the copies of the partitions the member
// holds (as owner or backup) of the maps that persist to it, each with a Mark saying how recent
// it is, so that a cluster restarted on the same folders can load every partition from the
// newest copy any of them holds (see docs/restart.md). It knows nothing of the cluster: the
// engine decides what to write and which copy to load; this package stores and reads.
//
// # Layout
//
// One pebble database in the folder. A partition's copy of life L is the key range
//
//	'e' | partition (4 bytes) | L (8 bytes) | len(map) (2 bytes) | map | key  ->  expireAt (8 bytes) | value
//
// and its mark is the key 'm' | partition | L. A copy without its mark is incomplete (being
// received, or being restored) and never loaded. Integers are big-endian, so a partition's
// copies sort by life, and a copy's entries by map and key.
//
// # Durability
//
// Commits do not wait for the disk (pebble's NoSync): what they wrote survives the process's
// death once Sync returns, or once pebble's write-ahead log writer has handed it to the
// operating system (at once, in the background), and it survives the machine's crash once it
// reached the disk. Sync makes every commit before it durable.
package replicadisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Disk is a member's data folder. It is safe for concurrent use; the engine serialises the
// writes of one partition.
type Disk struct {
	db     *pebble.DB
	closed atomic.Bool
}

// memTableSize is the size of the folder's pebble memtable: up to two are in memory at once
// (one filling, one flushing), outside Config.MemoryBudget, and their pages become resident only
// as they are written.
const memTableSize = 32 << 20

// separateFrom is the value size from which the folder keeps values in blob files beside its
// tables (pebble's value separation): a value is written once to its blob file when its memtable
// is flushed, and compactions move only its reference, where without separation every
// compaction read, compressed and wrote the value again. Crash dumps and other values of
// kilobytes to megabytes are what data folders hold; for them compactions were the larger part
// of the folder's disk writes, and their block buffers (up to a value's size, several at once)
// the larger part of a member's heap beyond its memory budget (docs/restart.md).
const separateFrom = 4 << 10

// options are the folder's pebble options. FormatValueSeparation is the oldest format that
// separates values; a folder written by an older gridmap is moved up to it when opened (and
// cannot be opened by that older gridmap afterwards: CHANGELOG.md).
func options() *pebble.Options {
	o := &pebble.Options{Logger: quiet{}, MemTableSize: memTableSize, FormatMajorVersion: pebble.FormatValueSeparation}
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           separateFrom,
			MaxBlobReferenceDepth: 10,
			// Blob files whose values are mostly deleted or overwritten are rewritten once a
			// fifth of their bytes is garbage and they are a minute old: maps with TTLs and
			// overwrites (the Socorro demo's raw crashes live 5 minutes) would otherwise keep
			// every blob file that still holds one live value.
			RewriteMinimumAge:  time.Minute,
			TargetGarbageRatio: 0.2,
		}
	}
	return o
}

// Open opens (creating it if needed) the data folder dir.
func Open(dir string) (*Disk, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replicadisk: %w", err)
	}
	// A 32 MiB memtable (pebble's default is 4 MiB): with large values the default flushed a
	// table every few writes, and the flushes and the L0 compactions they cause held writes
	// back. BenchmarkPutDataDir: 64 KiB puts 480 -> 340 µs, 1 MiB puts 13 -> 7.4 ms (docs/restart.md).
	db, err := pebble.Open(dir, options())
	if err != nil {
		return nil, fmt.Errorf("replicadisk: open %s: %w", dir, err)
	}
	return &Disk{db: db}, nil
}

// Close closes the folder; commits made before it are durable (pebble syncs its log at close).
func (d *Disk) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	if err := d.db.LogData(nil, pebble.Sync); err != nil {
		d.db.Close()
		return fmt.Errorf("replicadisk: %w", err)
	}
	return d.db.Close()
}

// Sync makes every commit made before it durable.
func (d *Disk) Sync() error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.db.LogData(nil, pebble.Sync)
}

// Entry is one map entry of a partition's copy. ExpireAt is the owner's wall clock in Unix
// nanoseconds, 0 for none.
type Entry struct {
	Map      string
	Key      []byte
	Value    []byte
	ExpireAt int64
}

// Batch collects changes of one partition's copy of one life, committed at once.
type Batch struct {
	d    *Disk
	b    *pebble.Batch
	part uint32
	life uint64
}

// Batch starts a batch of changes to partition part's copy of life life.
func (d *Disk) Batch(part uint32, life uint64) *Batch {
	return &Batch{d: d, b: d.db.NewBatch(), part: part, life: life}
}

// Set stores an entry. The stored value (expiry, then the value) is encoded straight into the
// batch, so a large value is copied once, not into a buffer of its own first.
func (b *Batch) Set(e Entry) {
	k := entryKey(b.part, b.life, e.Map, e.Key)
	op := b.b.SetDeferred(len(k), 8+len(e.Value))
	copy(op.Key, k)
	binary.BigEndian.PutUint64(op.Value, uint64(e.ExpireAt))
	copy(op.Value[8:], e.Value)
	_ = op.Finish()
}

// Delete removes an entry.
func (b *Batch) Delete(mapName string, key []byte) {
	_ = b.b.Delete(entryKey(b.part, b.life, mapName, key), nil)
}

// ClearMap removes every entry of one map.
func (b *Batch) ClearMap(mapName string) {
	start := entryKey(b.part, b.life, mapName, nil)
	_ = b.b.DeleteRange(start, prefixEnd(start), nil)
}

// ClearLife removes the copy of the batch's life, entries and mark.
func (b *Batch) ClearLife() {
	start := lifePrefix('e', b.part, b.life)
	_ = b.b.DeleteRange(start, prefixEnd(start), nil)
	_ = b.b.Delete(lifePrefix('m', b.part, b.life), nil)
}

// ClearOlder removes the partition's copies of lives before the batch's.
func (b *Batch) ClearOlder() {
	for _, kind := range []byte{'e', 'm'} {
		_ = b.b.DeleteRange(lifePrefix(kind, b.part, 0), lifePrefix(kind, b.part, b.life), nil)
	}
}

// SetMark marks the batch's copy complete as of m (m.Life is the batch's life).
func (b *Batch) SetMark(m Mark) {
	m.Life = b.life
	_ = b.b.Set(lifePrefix('m', b.part, b.life), m.encode(), nil)
}

// DropMark marks the batch's copy incomplete.
func (b *Batch) DropMark() { _ = b.b.Delete(lifePrefix('m', b.part, b.life), nil) }

// Discard drops the batch without writing it.
func (b *Batch) Discard() { _ = b.b.Close() }

// Commit writes the batch, without waiting for the disk (see Sync).
func (b *Batch) Commit() error {
	defer b.b.Close()
	if b.d.closed.Load() {
		return ErrClosed
	}
	if b.b.Empty() {
		return nil
	}
	return b.b.Commit(pebble.NoSync)
}

// NewestMark returns the mark of the partition's newest complete copy in the folder.
func (d *Disk) NewestMark(part uint32) (Mark, bool, error) {
	if d.closed.Load() {
		return Mark{}, false, ErrClosed
	}
	start := lifePrefix('m', part, 0)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: lifePrefix('m', part+1, 0)})
	if err != nil {
		return Mark{}, false, err
	}
	defer it.Close()
	if !it.Last() {
		return Mark{}, false, it.Error()
	}
	m, err := decodeMark(it.Value())
	if err != nil {
		return Mark{}, false, err
	}
	return m, true, nil
}

// Entries calls fn with the entries of the partition's copy of life life after cursor (nil:
// from the first), in order, until about maxBytes of keys and values were given. It returns the
// cursor of the last entry given and whether more follow. fn's entry aliases nothing of the
// folder.
func (d *Disk) Entries(part uint32, life uint64, cursor []byte, maxBytes int, fn func(Entry)) (next []byte, more bool, err error) {
	if d.closed.Load() {
		return nil, false, ErrClosed
	}
	prefix := lifePrefix('e', part, life)
	lower := prefix
	if cursor != nil {
		lower = append(append(bytes.Clone(prefix), cursor...), 0)
	}
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	size := 0
	for ok := it.First(); ok; ok = it.Next() {
		if size >= maxBytes {
			return next, true, nil
		}
		suffix := it.Key()[len(prefix):]
		if len(suffix) < 2 || len(suffix) < 2+int(binary.BigEndian.Uint16(suffix)) {
			return nil, false, fmt.Errorf("%w: entry key of %d bytes", ErrCorrupt, len(it.Key()))
		}
		n := int(binary.BigEndian.Uint16(suffix))
		v := it.Value()
		if len(v) < 8 {
			return nil, false, fmt.Errorf("%w: entry value of %d bytes", ErrCorrupt, len(v))
		}
		e := Entry{Map: string(suffix[2 : 2+n]), Key: bytes.Clone(suffix[2+n:]),
			Value: bytes.Clone(v[8:]), ExpireAt: int64(binary.BigEndian.Uint64(v))}
		fn(e)
		size += len(e.Key) + len(e.Value)
		next = bytes.Clone(suffix)
	}
	return next, false, it.Error()
}

func lifePrefix(kind byte, part uint32, life uint64) []byte {
	b := make([]byte, 13, 64)
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], part)
	binary.BigEndian.PutUint64(b[5:], life)
	return b
}

func entryKey(part uint32, life uint64, mapName string, key []byte) []byte {
	b := lifePrefix('e', part, life)
	b = binary.BigEndian.AppendUint16(b, uint16(len(mapName)))
	b = append(b, mapName...)
	return append(b, key...)
}

// prefixEnd returns the first key after every key starting with prefix (prefix is never all
// 0xff here: it starts with 'e' or 'm').
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// quiet discards pebble's logs.
type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
