// Package memstore is an in-memory mapstore backend for tests and examples, with fault
// injection (fail the next N calls, add latency, go down and come back) and a record of every
// call, so tests can assert how a map used its store ("each key loaded exactly once", "1,000
// ordered calls").
//
// A Store is safe for concurrent use. It implements mapstore.Store, mapstore.BatchStore,
// mapstore.Loader, mapstore.AllLoader and mapstore.KeyLoader.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

var (
	_ mapstore.BatchStore = (*Store)(nil)
	_ mapstore.Loader     = (*Store)(nil)
	_ mapstore.AllLoader  = (*Store)(nil)
	_ mapstore.KeyLoader  = (*Store)(nil)
)

// Op names a store method.
type Op string

// The operations a Store records.
const (
	OpLoad        Op = "Load"
	OpLoadAll     Op = "LoadAll"
	OpLoadAllKeys Op = "LoadAllKeys"
	OpStore       Op = "Store"
	OpDelete      Op = "Delete"
	OpStoreAll    Op = "StoreAll"
	OpDeleteAll   Op = "DeleteAll"
)

// Call is the record of one key in one call (a batch call records one Call per key, all with
// the same N). LoadAllKeys records one Call without a key.
type Call struct {
	N     int    // number of the method call, from 1, in the order calls started
	Op    Op     // the method
	Key   string // the key, "" for LoadAllKeys
	Value []byte // the value stored (Store, StoreAll), a copy
	Err   error  // the error the call returned (injected or down), nil on success
}

// Store is an in-memory store. The zero value is not usable; call New.
type Store struct {
	mu       sync.Mutex
	data     map[string][]byte
	calls    []Call
	n        int
	failNext int
	failErr  error
	latency  time.Duration
	down     bool
}

// New returns an empty store that is up, with no latency and no failures scheduled.
func New() *Store { return &Store{data: make(map[string][]byte)} }

// FailNext makes the next n method calls fail with err (ErrInjected if err is nil), after any
// latency. Calls while down fail with ErrDown without using up these failures.
func (s *Store) FailNext(n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	s.mu.Lock()
	s.failNext, s.failErr = n, err
	s.mu.Unlock()
}

// SetLatency makes every call wait d (or until its context ends) before it does anything.
func (s *Store) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// Down makes every call fail with ErrDown until Up.
func (s *Store) Down() { s.mu.Lock(); s.down = true; s.mu.Unlock() }

// Up ends Down.
func (s *Store) Up() { s.mu.Lock(); s.down = false; s.mu.Unlock() }

// Put stores a value directly, without recording a call or injecting faults: for seeding.
func (s *Store) Put(key, value []byte) {
	s.mu.Lock()
	s.data[string(key)] = bytes.Clone(value)
	s.mu.Unlock()
}

// Get returns a copy of the value under key, without recording a call.
func (s *Store) Get(key []byte) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[string(key)]
	return bytes.Clone(v), ok
}

// Len returns the number of keys stored.
func (s *Store) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.data) }

// Keys returns the stored keys, sorted.
func (s *Store) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Calls returns a copy of the record of every call so far.
func (s *Store) Calls() []Call { s.mu.Lock(); defer s.mu.Unlock(); return slices.Clone(s.calls) }

// CallsFor returns the recorded calls for key, in order.
func (s *Store) CallsFor(key string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if c.Key == key {
			out = append(out, c)
		}
	}
	return out
}

// Count returns how many method calls of the given operations were made (a batch call counts
// once), failed ones included.
func (s *Store) Count(ops ...Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, last := 0, 0
	for _, c := range s.calls {
		if c.N != last && slices.Contains(ops, c.Op) {
			n++
			last = c.N
		}
	}
	return n
}

// ResetCalls forgets the recorded calls.
func (s *Store) ResetCalls() { s.mu.Lock(); s.calls = nil; s.mu.Unlock() }

// begin waits the latency, then decides the call's fate and numbers it.
func (s *Store) begin(ctx context.Context) (n int, err error) {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	switch {
	case ctx.Err() != nil:
		return s.n, fmt.Errorf("memstore: %w", ctx.Err())
	case s.down:
		return s.n, ErrDown
	case s.failNext > 0:
		s.failNext--
		return s.n, s.failErr
	}
	return s.n, nil
}

// record appends calls; the caller holds s.mu.
func (s *Store) record(n int, op Op, err error, keys [][]byte, values [][]byte) {
	for i, k := range keys {
		c := Call{N: n, Op: op, Key: string(k), Err: err}
		if values != nil {
			c.Value = bytes.Clone(values[i])
		}
		s.calls = append(s.calls, c)
	}
}

// Load implements mapstore.Loader.
func (s *Store) Load(ctx context.Context, key []byte) ([]byte, bool, error) {
	n, err := s.begin(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(n, OpLoad, err, [][]byte{key}, nil)
	if err != nil {
		return nil, false, err
	}
	v, ok := s.data[string(key)]
	return bytes.Clone(v), ok, nil
}

// LoadAll implements mapstore.AllLoader. It calls fn without holding the store's lock.
func (s *Store) LoadAll(ctx context.Context, keys [][]byte, fn func(key, value []byte) error) error {
	n, err := s.begin(ctx)
	s.mu.Lock()
	s.record(n, OpLoadAll, err, keys, nil)
	var found, values [][]byte
	for _, k := range keys {
		if v, ok := s.data[string(k)]; ok && err == nil {
			found = append(found, k)
			values = append(values, bytes.Clone(v))
		}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for i := range found {
		if err := fn(found[i], values[i]); err != nil {
			return err
		}
	}
	return nil
}

// LoadAllKeys implements mapstore.KeyLoader: keys in sorted order, fn called without the lock.
func (s *Store) LoadAllKeys(ctx context.Context, fn func(key []byte) error) error {
	n, err := s.begin(ctx)
	s.mu.Lock()
	s.calls = append(s.calls, Call{N: n, Op: OpLoadAllKeys, Err: err})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for _, k := range s.Keys() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstore: %w", err)
		}
		if err := fn([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}

// Store implements mapstore.Store.
func (s *Store) Store(ctx context.Context, key, value []byte) error {
	return s.write(ctx, OpStore, [][]byte{key}, [][]byte{value})
}

// Delete implements mapstore.Store.
func (s *Store) Delete(ctx context.Context, key []byte) error {
	return s.write(ctx, OpDelete, [][]byte{key}, nil)
}

// StoreAll implements mapstore.BatchStore.
func (s *Store) StoreAll(ctx context.Context, keys, values [][]byte) error {
	if len(keys) != len(values) {
		return fmt.Errorf("memstore: StoreAll with %d keys and %d values", len(keys), len(values))
	}
	return s.write(ctx, OpStoreAll, keys, values)
}

// DeleteAll implements mapstore.BatchStore.
func (s *Store) DeleteAll(ctx context.Context, keys [][]byte) error {
	return s.write(ctx, OpDeleteAll, keys, nil)
}

// write applies a write (values nil: a delete) atomically and records it.
func (s *Store) write(ctx context.Context, op Op, keys, values [][]byte) error {
	n, err := s.begin(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(n, op, err, keys, values)
	if err != nil {
		return err
	}
	for i, k := range keys {
		if values == nil {
			delete(s.data, string(k))
		} else {
			s.data[string(k)] = bytes.Clone(values[i])
		}
	}
	return nil
}
