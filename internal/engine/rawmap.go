package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/partition"
)

// Map is the untyped handle of one map on this member: the operations a typed façade
// (dmap.Map) runs with keys and values it encoded, each routed to the owner of the partition
// the façade computed. It is safe for concurrent use.
type Map struct {
	s    *Service
	name string
	// partitionOfStored partitions a key as the store holds it (encoded), as the façade does
	// (its codec and PartitionAware): the initial load needs it.
	partitionOfStored func(key []byte) (partition.ID, error)
	loaded            atomic.Bool // the initial load ran (or the map has none)
	ops               *mapOps     // the map's operation counters on this member
}

// OpenMap returns the handle of the map called name. partitionOfStored partitions an encoded
// key the way the caller does (the initial load of a map with a key loader uses it). A map
// whose store is configured to load eagerly is loaded before OpenMap returns.
func (s *Service) OpenMap(name string, partitionOfStored func(key []byte) (partition.ID, error)) (*Map, error) {
	if err := CheckMapName(name); err != nil {
		return nil, err
	}
	return s.openMap(name, partitionOfStored)
}

func (s *Service) openMap(name string, partitionOfStored func(key []byte) (partition.ID, error)) (*Map, error) {
	m := &Map{s: s, name: name, partitionOfStored: partitionOfStored, ops: s.ops.of(name)}
	if ps := s.persistenceOf(name); ps != nil && ps.cfg.InitialLoad == mapstore.LoadEager {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OperationTimeout)
		defer cancel()
		if err := m.ensureLoaded(ctx); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// StructureMapName is the name of the engine map that holds the structure called name of a
// façade's kind ("queue", "topic"). It starts with a NUL byte, which user maps may not
// (CheckMapName), so a queue and a map of the same name never share entries, and each kind has
// its own names.
func StructureMapName(kind, name string) string { return "\x00" + kind + "\x00" + name }

// IsStructureMapName reports whether name is a StructureMapName (of a non-empty kind and name).
func IsStructureMapName(name string) bool {
	_, _, ok := SplitStructureMapName(name)
	return ok
}

// SplitStructureMapName returns the kind and the structure's name of a StructureMapName; ok is
// false for any other name.
func SplitStructureMapName(mapName string) (kind, name string, ok bool) {
	if len(mapName) == 0 || mapName[0] != 0 {
		return "", "", false
	}
	kind, name, ok = strings.Cut(mapName[1:], "\x00")
	return kind, name, ok && kind != "" && name != ""
}

// OpenStructureMap returns the handle of the map holding the structure called name of a façade's
// kind (see StructureMapName). Its keys are the façade's own: partitionOfStored is as for
// OpenMap.
func (s *Service) OpenStructureMap(kind, name string, partitionOfStored func(key []byte) (partition.ID, error)) (*Map, error) {
	if kind == "" || name == "" {
		return nil, fmt.Errorf("%w: a %s needs a name", ErrInvalidConfig, cmp.Or(kind, "structure"))
	}
	return s.openMap(StructureMapName(kind, name), partitionOfStored)
}

// CheckMapName reports whether name may name a map.
func CheckMapName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty map name", ErrInvalidConfig)
	}
	if name[0] == 0 {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, errReservedName)
	}
	return nil
}

// Name returns the map's name.
func (m *Map) Name() string { return m.name }

// Service returns the member's service the map belongs to.
func (m *Map) Service() *Service { return m.s }

// ensureLoaded runs the map's initial load (once per member; the load itself happens once per
// cluster) before the first operation of this member on it. If the store cannot be read (it is
// down), the operation goes on without waiting: the load is retried in the background until it
// succeeds, and meanwhile single keys read through while iteration and Size see what is loaded.
func (m *Map) ensureLoaded(ctx context.Context) error {
	if m.loaded.Load() {
		return nil
	}
	ps := m.s.persistenceOf(m.name)
	if _, ok := ps.keyLoader(); !ok {
		m.loaded.Store(true)
		return nil
	}
	m.s.initialLoad(ctx, m.name, m.partitionOfStored)
	m.loaded.Store(true)
	return nil
}

// KeyOp runs a single-key operation on key (encoded, in partition p) and returns the owner's
// answer; a status other than OK and NotFound comes back as its error. value may be borrowed:
// it may still belong to the caller, and is copied only if this member serves the operation
// itself. The lock holder, if any, comes from ctx (WithHolder).
func (m *Map) KeyOp(ctx context.Context, kind OpKind, key []byte, p partition.ID, value []byte, borrowed bool, ttl time.Duration, expect []byte) (Response, error) {
	if err := m.ensureLoaded(ctx); err != nil {
		return opResponse{}, err
	}
	if len(key)+len(value)+len(expect) > m.s.cfg.MaxValueSize {
		return opResponse{}, fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(key)+len(value)+len(expect), m.s.cfg.MaxValueSize)
	}
	if ttl < 0 {
		return opResponse{}, fmt.Errorf("%w: negative TTL %v", ErrInvalidConfig, ttl)
	}
	req := &opRequest{Map: m.name, Kind: kind, Part: int32(p), Key: key, Value: value, TTL: int64(ttl), Expect: expect, Holder: HolderFrom(ctx), borrowed: borrowed, ops: m.ops}
	resp, err := m.s.do(ctx, req)
	if err != nil {
		return resp, err
	}
	if resp.Status != statusOK && resp.Status != statusNotFound {
		return resp, resp.Status.err(resp.Msg)
	}
	return resp, nil
}

// LockOp runs a lock operation (OpLock, OpUnlock, OpIsLocked) on key for holder, with lease
// (OpLock; 0: none).
func (m *Map) LockOp(ctx context.Context, kind OpKind, key []byte, p partition.ID, holder string, lease time.Duration) (Response, error) {
	resp, err := m.s.do(ctx, &opRequest{Map: m.name, Kind: kind, Part: int32(p), Key: key, Holder: holder, TTL: int64(lease), ops: m.ops})
	if err == nil && resp.Status != statusOK {
		err = resp.Status.err(resp.Msg)
	}
	return resp, err
}

// Execute runs the processor registered as proc on key's owner with arg and returns its result.
func (m *Map) Execute(ctx context.Context, proc string, key []byte, p partition.ID, arg []byte) ([]byte, error) {
	resp, err := m.s.do(ctx, &opRequest{Map: m.name, Kind: opExecute, Part: int32(p), Key: key, Value: arg, Proc: proc, Holder: HolderFrom(ctx), ops: m.ops})
	if err == nil && resp.Status != statusOK {
		err = m.s.respErr(resp)
	}
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

// ExecuteAll runs the processor registered as proc on every entry of the map in partition p,
// on its owner, and returns each key's result.
func (m *Map) ExecuteAll(ctx context.Context, proc string, p partition.ID, arg []byte) ([]KV, error) {
	resp, err := m.s.do(ctx, &opRequest{Map: m.name, Kind: opExecuteAll, Part: int32(p), Value: arg, Proc: proc, Holder: HolderFrom(ctx), ops: m.ops})
	if err == nil && resp.Status != statusOK {
		err = m.s.respErr(resp)
	}
	if err != nil {
		return nil, fmt.Errorf("partition %d: %w", p, err)
	}
	return resp.Entries, nil
}

// partitionOp runs a per-partition operation on the owner of p.
func (m *Map) partitionOp(ctx context.Context, kind opKind, p partition.ID) (opResponse, error) {
	if err := m.ensureLoaded(ctx); err != nil {
		return opResponse{}, err
	}
	resp, err := m.s.do(ctx, &opRequest{Map: m.name, Kind: kind, Part: int32(p), ops: m.ops})
	if err == nil && resp.Status != statusOK {
		err = resp.Status.err(resp.Msg)
	}
	return resp, err
}

// Scan returns the live entries (keys only unless values) of the map in partition p, read
// atomically from its owner.
func (m *Map) Scan(ctx context.Context, p partition.ID, values bool) ([]KV, error) {
	kind := opScanKeys
	if values {
		kind = opScanEntries
	}
	resp, err := m.partitionOp(ctx, kind, p)
	return resp.Entries, err
}

// forEachPartition runs fn for every partition with bounded parallelism and returns the first
// error.
func (m *Map) forEachPartition(ctx context.Context, fn func(ctx context.Context, p partition.ID) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const workers = 8
	next := make(chan partition.ID)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			var first error
			for p := range next {
				if first == nil {
					if err := fn(ctx, p); err != nil {
						first = err
						cancel()
					}
				}
			}
			errs <- first
		}()
	}
	for i := range m.s.parts {
		select {
		case next <- partition.ID(i):
		case <-ctx.Done():
		}
	}
	close(next)
	var err error
	for range workers {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err == nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		err = ctx.Err()
	}
	return err
}

// Size returns the number of live entries in the map, summed over every partition's owner.
func (m *Map) Size(ctx context.Context) (int, error) {
	counts := make([]int, len(m.s.parts))
	err := m.forEachPartition(ctx, func(ctx context.Context, p partition.ID) error {
		resp, err := m.partitionOp(ctx, opSize, p)
		counts[p] = resp.Count
		return err
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	return total, err
}

// Clear removes every entry of the map, partition by partition (each partition atomically).
func (m *Map) Clear(ctx context.Context) error {
	return m.forEachPartition(ctx, func(ctx context.Context, p partition.ID) error {
		_, err := m.partitionOp(ctx, opClear, p)
		return err
	})
}

// Flush returns once every write made to the map before the call is in its store (a no-op for
// maps without write-behind).
func (m *Map) Flush(ctx context.Context) error {
	if m.s.embedded(m.name) {
		return m.s.SyncDisks(ctx)
	}
	if !m.s.persistenceOf(m.name).writeBehind() {
		return nil
	}
	return m.forEachPartition(ctx, func(ctx context.Context, p partition.ID) error {
		_, err := m.partitionOp(ctx, opFlush, p)
		return err
	})
}

// LocalPartitions lists the partitions this member owns in its latest table.
func (m *Map) LocalPartitions() []partition.ID { return m.s.localPartitions() }

// LocalScan copies the live entries (keys only unless values) of the map in partition p from
// this member's memory (paged-out values from its data folder, which can fail: ErrStore).
func (m *Map) LocalScan(p partition.ID, values bool) ([]KV, error) {
	return m.s.localScan(p, m.name, values)
}

// localPartitions lists the partitions this member owns in its latest table.
func (s *Service) localPartitions() []partition.ID {
	t := s.cluster.Table()
	var out []partition.ID
	for i := range t.Partitions {
		if t.Owner(partition.ID(i)) == s.self {
			out = append(out, partition.ID(i))
		}
	}
	return out
}

// localScan copies the live entries of one map in partition p.
func (s *Service) localScan(p partition.ID, mapName string, values bool) ([]kv, error) {
	pt := s.parts[p]
	pt.mu.RLock()
	defer pt.mu.RUnlock()
	kind := opScanKeys
	if values {
		kind = opScanEntries
	}
	resp := readPartition(pt.rs, &opRequest{Map: mapName, Kind: kind}, s.now())
	return resp.Entries, resp.Status.err(resp.Msg)
}

// ListenerReg is a registered listener: Remove ends it, Stats returns its counters.
type ListenerReg struct {
	Remove func()
	Stats  func() listener.Stats
}

// AddLocalListener registers fn for the events of the map's entries this member owns (see
// dmap.Map.AddLocalEntryListener). lo is the raw form of the listener's options.
func (m *Map) AddLocalListener(fn func(listener.Event), lo listener.Options) (ListenerReg, error) {
	reg, err := m.s.events.local.Register(m.name, listener.Func(fn), lo)
	if err != nil {
		if err == listener.ErrClosed {
			return ListenerReg{}, ErrClosed
		}
		return ListenerReg{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return ListenerReg{Remove: reg.Remove, Stats: reg.Stats}, nil
}
