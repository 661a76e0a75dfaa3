// Package pebblestore is a mapstore backend on cockroachdb/pebble in one local data directory,
// with zero configuration. A cluster that must survive a full restart without an external store
// uses gridmap.Config.DataDir instead, which keeps every replica's copy of its partitions in its
// member's folder (docs/restart.md): a pebblestore directory holds what one member wrote behind.
//
// # Layout
//
// Keys and small values live in pebble. A value of Options.BlobThreshold bytes or more (64 KiB
// by default) is written to a file of its own under dir/blobs, and pebble holds a reference with
// its length and CRC-32C. Large values thus cost one write instead of three or more (the WAL,
// the memtable flush and the compactions of an LSM) and never pass through the memtable, whose
// memory stays small however large the values (up to tens of MiB) are. Blob files that no key
// references any more (a crash between writing a blob and committing its reference, or between
// committing a deletion and removing the file) are removed when the store is opened.
//
// # Durability
//
// By default every call (Store, Delete, StoreAll, DeleteAll) is durable when it returns: blob
// files are written and fsynced (in parallel), their directory is fsynced, then the pebble batch
// is committed with fsync. One call costs one WAL fsync however many entries it holds, so batch
// calls are much cheaper per entry. With Options.NoSync nothing is fsynced: an acknowledged
// write survives a crash of the process (the data is in the operating system's page cache) but
// not of the machine; a blob lost that way is reported as ErrCorrupt when loaded.
//
// # Tests
//
// The crash test re-executes the test binary, which writes and acknowledges entries until it is
// killed with SIGKILL, then reopens the store. Run more rounds with the build tag "long".
// BenchmarkDrain measures the write-behind drain rate with the Socorro size mix.
package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/gridmap/gridmap/mapstore"
)

var (
	_ mapstore.BatchStore = (*Store)(nil)
	_ mapstore.Loader     = (*Store)(nil)
	_ mapstore.AllLoader  = (*Store)(nil)
	_ mapstore.KeyLoader  = (*Store)(nil)
)

// DefaultBlobThreshold is the value size from which values go to blob files.
const DefaultBlobThreshold = 64 << 10

// DefaultBlobWriters is how many blob files one call writes in parallel by default.
const DefaultBlobWriters = 8

// Options configure a Store. The zero value is the recommended configuration. As every
// configuration of the module: WithDefaults fills the zero fields in, Validate reports every
// problem of o.WithDefaults() in one error wrapping ErrInvalidOptions, and Open does both.
type Options struct {
	// NoSync skips every fsync: writes survive a process crash but not a machine crash. Default
	// false: each call is durable when it returns.
	NoSync bool
	// BlobThreshold is the size in bytes from which a value is written to a blob file of its own
	// rather than into pebble. 0 means DefaultBlobThreshold (64 KiB); negative keeps every value
	// in pebble.
	BlobThreshold int
	// BlobWriters is how many blob files one call writes (and fsyncs) concurrently. 0 means
	// DefaultBlobWriters (8).
	BlobWriters int
	// Pebble, if set, adjusts pebble's options before the database is opened (cache size,
	// memtable size, logger...). By default pebble's defaults apply with a logger that discards.
	Pebble func(*pebble.Options)
}

// Store is a mapstore backend in one data directory: use one directory per map. It is safe for
// concurrent use; calls for one key must not be concurrent (the mapstore contract).
type Store struct {
	db      *pebble.DB
	dir     string
	blobDir string
	opts    Options
	wopts   *pebble.WriteOptions
	nextID  atomic.Uint64
	closed  atomic.Bool
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.BlobThreshold == 0 {
		o.BlobThreshold = DefaultBlobThreshold
	}
	if o.BlobWriters == 0 {
		o.BlobWriters = DefaultBlobWriters
	}
	return o
}

// Validate reports every problem of o.WithDefaults() in one error wrapping ErrInvalidOptions.
func (o Options) Validate() error {
	o = o.WithDefaults()
	if o.BlobWriters < 0 {
		return fmt.Errorf("%w: BlobWriters %d is negative", ErrInvalidOptions, o.BlobWriters)
	}
	return nil
}

// Open opens (creating it if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	s := &Store{dir: dir, blobDir: filepath.Join(dir, "blobs"), opts: opts, wopts: pebble.Sync}
	if opts.NoSync {
		s.wopts = pebble.NoSync
	}
	if err := os.MkdirAll(s.blobDir, 0o755); err != nil {
		return nil, fmt.Errorf("pebblestore: %w", err)
	}
	po := &pebble.Options{Logger: quiet{}}
	if opts.Pebble != nil {
		opts.Pebble(po)
	}
	db, err := pebble.Open(filepath.Join(dir, "db"), po)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s.db = db
	if err := s.collectBlobs(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. Calls after Close fail with ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebblestore: close: %w", err)
	}
	return nil
}

// quiet is a pebble logger that discards informational messages and panics on fatal ones.
type quiet struct{}

func (quiet) Infof(string, ...any)           {}
func (quiet) Errorf(string, ...any)          {}
func (quiet) Fatalf(format string, a ...any) { panic(fmt.Sprintf("pebblestore: "+format, a...)) }

// The value stored in pebble starts with a tag byte.
const (
	tagInline  = 0 // the value follows
	tagBlob    = 1 // blob id (8), length (8), CRC-32C (4), big-endian
	blobRefLen = 1 + 8 + 8 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type blobRef struct {
	id, size uint64
	crc      uint32
}

func (r blobRef) encode() []byte {
	b := make([]byte, blobRefLen)
	b[0] = tagBlob
	binary.BigEndian.PutUint64(b[1:], r.id)
	binary.BigEndian.PutUint64(b[9:], r.size)
	binary.BigEndian.PutUint32(b[17:], r.crc)
	return b
}

// decodeRef returns the blob reference in a stored value, if it is one.
func decodeRef(v []byte) (blobRef, bool, error) {
	if len(v) == 0 {
		return blobRef{}, false, fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	switch v[0] {
	case tagInline:
		return blobRef{}, false, nil
	case tagBlob:
		if len(v) != blobRefLen {
			return blobRef{}, false, fmt.Errorf("%w: blob reference of %d bytes", ErrCorrupt, len(v))
		}
		return blobRef{id: binary.BigEndian.Uint64(v[1:]), size: binary.BigEndian.Uint64(v[9:]), crc: binary.BigEndian.Uint32(v[17:])}, true, nil
	}
	return blobRef{}, false, fmt.Errorf("%w: unknown tag %d", ErrCorrupt, v[0])
}

func (s *Store) blobPath(id uint64) string {
	return filepath.Join(s.blobDir, fmt.Sprintf("%016x", id))
}

// collectBlobs removes blob files no key references and sets the next blob id.
func (s *Store) collectBlobs() error {
	live := make(map[uint64]bool)
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("pebblestore: scan: %w", err)
		}
		if r, ok, _ := decodeRef(v); ok {
			live[r.id] = true
			s.nextID.Store(max(s.nextID.Load(), r.id))
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("pebblestore: scan: %w", err)
	}
	ents, err := os.ReadDir(s.blobDir)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name(), 16, 64)
		if err != nil {
			continue // not ours
		}
		s.nextID.Store(max(s.nextID.Load(), id))
		if !live[id] {
			if err := os.Remove(filepath.Join(s.blobDir, e.Name())); err != nil {
				return fmt.Errorf("pebblestore: remove orphan blob: %w", err)
			}
		}
	}
	return nil
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	return nil
}

// Store implements mapstore.Store.
func (s *Store) Store(ctx context.Context, key, value []byte) error {
	return s.StoreAll(ctx, [][]byte{key}, [][]byte{value})
}

// Delete implements mapstore.Store.
func (s *Store) Delete(ctx context.Context, key []byte) error {
	return s.DeleteAll(ctx, [][]byte{key})
}

// StoreAll implements mapstore.BatchStore: the whole call is one pebble batch, committed once.
func (s *Store) StoreAll(ctx context.Context, keys, values [][]byte) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if len(keys) != len(values) {
		return fmt.Errorf("pebblestore: StoreAll with %d keys and %d values", len(keys), len(values))
	}
	records := make([][]byte, len(keys))
	var blobs []int // indexes of values that go to blob files
	for i, v := range values {
		if s.opts.BlobThreshold > 0 && len(v) >= s.opts.BlobThreshold {
			blobs = append(blobs, i)
		}
	}
	ids := make([]uint64, 0, len(blobs))
	if len(blobs) > 0 {
		for range blobs {
			ids = append(ids, s.nextID.Add(1))
		}
		if err := s.writeBlobs(ctx, blobs, ids, values, records); err != nil {
			s.removeBlobs(ids)
			return err
		}
	}
	err := s.commit(keys, func(b *pebble.Batch, i int) error {
		if records[i] == nil {
			rec := make([]byte, 1+len(values[i]))
			copy(rec[1:], values[i])
			records[i] = rec
		}
		return b.Set(keys[i], records[i], nil)
	})
	if err != nil {
		s.removeBlobs(ids)
	}
	return err
}

// DeleteAll implements mapstore.BatchStore.
func (s *Store) DeleteAll(ctx context.Context, keys [][]byte) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.commit(keys, func(b *pebble.Batch, i int) error { return b.Delete(keys[i], nil) })
}

// commit writes one batch built by op for each key and then removes the blob files the keys
// referenced before.
func (s *Store) commit(keys [][]byte, op func(b *pebble.Batch, i int) error) error {
	var old []uint64
	for _, k := range keys {
		if r, ok, err := s.ref(k); err != nil {
			return err
		} else if ok {
			old = append(old, r.id)
		}
	}
	b := s.db.NewBatch()
	defer b.Close()
	for i := range keys {
		if err := op(b, i); err != nil {
			return fmt.Errorf("pebblestore: %w", err)
		}
	}
	if err := b.Commit(s.wopts); err != nil {
		return fmt.Errorf("pebblestore: commit: %w", err)
	}
	s.removeBlobs(old)
	return nil
}

// ref returns the blob reference stored under key, if any.
func (s *Store) ref(key []byte) (blobRef, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return blobRef{}, false, nil
	}
	if err != nil {
		return blobRef{}, false, fmt.Errorf("pebblestore: %w", err)
	}
	defer closer.Close()
	return decodeRef(v)
}

// writeBlobs writes values[idx[j]] to blob file ids[j] (in parallel, fsynced unless NoSync),
// syncs the directory, and sets the records to the references.
func (s *Store) writeBlobs(ctx context.Context, idx []int, ids []uint64, values, records [][]byte) error {
	errs := make([]error, len(idx))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(s.opts.BlobWriters, len(idx)) {
		wg.Go(func() {
			for j := int(next.Add(1) - 1); j < len(idx); j = int(next.Add(1) - 1) {
				if ctx.Err() != nil {
					errs[j] = fmt.Errorf("pebblestore: %w", ctx.Err())
					continue
				}
				v := values[idx[j]]
				errs[j] = s.writeFile(s.blobPath(ids[j]), v)
				records[idx[j]] = blobRef{id: ids[j], size: uint64(len(v)), crc: crc32.Checksum(v, castagnoli)}.encode()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !s.opts.NoSync {
		return syncDir(s.blobDir)
	}
	return nil
}

func (s *Store) writeFile(path string, v []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	_, err = f.Write(v)
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pebblestore: write blob: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return fmt.Errorf("pebblestore: sync %s: %w", dir, err)
	}
	return nil
}

// removeBlobs deletes blob files, ignoring failures: an orphan is collected at the next Open.
func (s *Store) removeBlobs(ids []uint64) {
	for _, id := range ids {
		os.Remove(s.blobPath(id))
	}
}

// Load implements mapstore.Loader. The returned value is a fresh slice owned by the caller.
func (s *Store) Load(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := s.check(ctx); err != nil {
		return nil, false, err
	}
	// A Store of the same key may replace the blob between reading the reference and the file;
	// reading the reference again then finds the new one.
	for attempt := 0; ; attempt++ {
		v, closer, err := s.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("pebblestore: %w", err)
		}
		r, isBlob, err := decodeRef(v)
		if err != nil || !isBlob {
			var out []byte
			if err == nil {
				out = bytes.Clone(v[1:])
				if out == nil {
					out = []byte{}
				}
			}
			closer.Close()
			return out, err == nil, err
		}
		closer.Close()
		out, err := s.readBlob(r)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		return out, true, nil
	}
}

func (s *Store) readBlob(r blobRef) ([]byte, error) {
	b, err := os.ReadFile(s.blobPath(r.id))
	if err != nil {
		return nil, fmt.Errorf("pebblestore: read blob: %w", err)
	}
	if uint64(len(b)) != r.size || crc32.Checksum(b, castagnoli) != r.crc {
		return nil, fmt.Errorf("%w: blob %016x has %d bytes or a bad checksum, want %d", ErrCorrupt, r.id, len(b), r.size)
	}
	return b, nil
}

// LoadAll implements mapstore.AllLoader: keys are read one by one, values are fresh slices.
func (s *Store) LoadAll(ctx context.Context, keys [][]byte, fn func(key, value []byte) error) error {
	for _, k := range keys {
		v, ok, err := s.Load(ctx, k)
		if err != nil {
			return err
		}
		if ok {
			if err := fn(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// LoadAllKeys implements mapstore.KeyLoader: keys in byte order, each valid only during fn.
func (s *Store) LoadAllKeys(ctx context.Context, fn func(key []byte) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			it.Close()
			return fmt.Errorf("pebblestore: %w", err)
		}
		if err := fn(it.Key()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	return nil
}
