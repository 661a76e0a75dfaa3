package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/internal/configerr"
	"github.com/gridmap/gridmap/internal/writebehind"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/partition"
)

// MapConfig configures one map on a member. Every member must configure a map the same way
// (pass the same Config.Maps everywhere): the owner of a partition stores its entries, and its
// backups keep the same write-behind queue so that a promoted backup goes on storing.
type MapConfig struct {
	// Store persists the map's entries. nil: the map lives in memory only.
	Store mapstore.Store
	// Loader reads entries missing from memory (read-through) and, if it also implements
	// mapstore.KeyLoader, loads the store's keys at the map's first use. nil: Store is used if it
	// implements mapstore.Loader.
	Loader mapstore.Loader
	// Persistence is the write-through or write-behind configuration (mapstore.Config: WriteDelay
	// 0 means write-through).
	Persistence mapstore.Config
}

// Validate reports every problem of c in one error wrapping ErrInvalidConfig, or nil. Zero
// fields of Persistence take mapstore's defaults first, as the service does. Config.Validate
// (and so NewService, and gridmap.Config.Validate) checks every map with it.
func (c MapConfig) Validate() error {
	return configerr.Join(ErrInvalidConfig, c.problems())
}

// problems lists c's problems, each naming its field.
func (c MapConfig) problems() []error {
	return configerr.Prefix("Persistence.", configerr.Problems(c.Persistence.WithDefaults().Validate(), mapstore.ErrInvalidConfig))
}

// persistence is the runtime state of one map's store on this member.
type persistence struct {
	name   string
	store  mapstore.Store
	batch  mapstore.BatchStore // nil if the store has no batch calls
	loader mapstore.Loader
	cfg    mapstore.Config
	budget *writebehind.Budget
	// breaker limits the write-behind calls to the store while it fails.
	breaker *storeBreaker

	storeCalls, storeErrors atomic.Uint64
	lastError               atomic.Pointer[errorAt]
	// rejected counts the write-behind entries the store refused for good (mapstore.ErrRejected),
	// which are not retried.
	rejected     atomic.Uint64
	lastRejected atomic.Pointer[errorAt]
}

type errorAt struct {
	err error
	at  time.Time
}

// newPersistence returns the state of a map's store; Config.Validate has checked mc.
func newPersistence(name string, mc MapConfig) *persistence {
	cfg := mc.Persistence.WithDefaults()
	ps := &persistence{name: name, store: mc.Store, loader: mc.Loader, cfg: cfg,
		budget: writebehind.NewBudget(cfg.MaxDirtyBytes, cfg.MaxDirtyEntries), breaker: newStoreBreaker(cfg)}
	if ps.loader == nil {
		ps.loader, _ = mc.Store.(mapstore.Loader)
	}
	ps.batch, _ = mc.Store.(mapstore.BatchStore)
	return ps
}

func (ps *persistence) writeBehind() bool {
	return ps != nil && ps.store != nil && !ps.cfg.WriteThrough()
}

func (ps *persistence) failed(err error) {
	ps.storeErrors.Add(1)
	ps.lastError.Store(&errorAt{err: err, at: time.Now()})
}

// rejectedBy records the entries a store call refused for good (every other entry of the call
// was applied) and reports whether err is such a refusal; any other error is returned as is.
func (s *Service) rejectedBy(ps *persistence, err error) error {
	rej := mapstore.Rejected(err)
	if rej == nil {
		return err
	}
	ps.rejected.Add(uint64(len(rej.Keys)))
	ps.lastRejected.Store(&errorAt{err: err, at: time.Now()})
	s.log.Error("write-behind store refused entries for good: they stay in memory but are not stored, and are not retried",
		"map", ps.name, "entries", len(rej.Keys), "err", err)
	return nil
}

// persistenceOf returns the store configuration of a map, or nil.
func (s *Service) persistenceOf(mapName string) *persistence { return s.stores[mapName] }

// admit applies back-pressure before a write to a write-behind map: while the map's dirty data
// on this member is at its limit, the writer waits, and fails with ErrDirtyLimit when ctx ends.
func (s *Service) admit(ctx context.Context, mapName string) error {
	ps := s.persistenceOf(mapName)
	if !ps.writeBehind() {
		return nil
	}
	if err := ps.budget.Wait(ctx); err != nil {
		return fmt.Errorf("%w: map %s: %w", ErrDirtyLimit, mapName, err)
	}
	return nil
}

// writeThrough stores a batch's changes to write-through maps before they are applied. It
// holds the partition's write lock, so the decision it stores stays valid.
func (s *Service) writeThrough(ctx context.Context, w *writeBatch) error {
	if len(s.stores) == 0 {
		return nil // the hot path of members without stores
	}
	for i, m := range w.muts {
		ps := s.persistenceOf(m.Map)
		if ps == nil || ps.store == nil || !ps.cfg.WriteThrough() || m.Clean {
			continue
		}
		var err error
		switch m.Kind {
		case mutSet:
			err = ps.store.Store(ctx, m.Key, m.Value)
		case mutDelete:
			err = ps.store.Delete(ctx, m.Key)
		case mutClear:
			for _, k := range w.cleared[i] {
				if err = ps.store.Delete(ctx, []byte(k)); err != nil {
					break
				}
			}
		default:
			continue
		}
		ps.storeCalls.Add(1)
		if err != nil {
			ps.failed(err)
			return fmt.Errorf("%w: map %s: %w", ErrStore, m.Map, err)
		}
	}
	return nil
}

// queue returns partition p's write-behind queue of a map, creating it; the caller holds p.mu.
func (s *Service) queue(p *part, ps *persistence) *writebehind.Queue {
	q := p.queues[ps.name]
	if q == nil {
		var err error
		if q, err = writebehind.NewQueue(ps.cfg, ps.budget); err != nil {
			panic(err) // the configuration was validated by NewService
		}
		if p.queues == nil {
			p.queues = make(map[string]*writebehind.Queue)
		}
		if p.rs.syncing {
			q.BeginSync()
		}
		p.queues[ps.name] = q
	}
	return q
}

// trackDirty records an applied mutation in the partition's write-behind queue. It runs on the
// owner and on every backup, so that the queues match; the caller holds p.mu.
func (s *Service) trackDirty(p *part, m mutation, cleared []string, now int64) {
	if len(s.stores) == 0 {
		return
	}
	ps := s.persistenceOf(m.Map)
	if !ps.writeBehind() {
		return
	}
	t := time.Unix(0, now)
	switch m.Kind {
	case mutSet:
		if !m.Clean {
			s.queue(p, ps).Add(writebehind.Entry{Key: m.Key, Value: m.Value, Seq: m.Seq}, t)
		}
	case mutDelete:
		s.queue(p, ps).Add(writebehind.Entry{Key: m.Key, Delete: true, Seq: m.Seq}, t)
	case mutClear:
		q := s.queue(p, ps)
		for _, k := range cleared {
			q.Add(writebehind.Entry{Key: []byte(k), Delete: true, Seq: m.Seq}, t)
		}
	case mutStored:
		if q := p.queues[m.Map]; q != nil {
			q.Ack([]writebehind.Entry{{Key: m.Key, Seq: m.Seq}})
		}
	}
}

// flushWorkers is how many partitions store write-behind batches at once on a member; several
// in parallel is what lets a store's throughput be used (fsyncs overlap).
const flushWorkers = 4

// flushTick is how often the flushers look for due entries when nobody asks them to.
const flushTick = 20 * time.Millisecond

// runFlusher stores the due write-behind batches of the partitions this member owns whose id
// is worker modulo flushWorkers.
func (s *Service) runFlusher(worker int) {
	defer s.wg.Done()
	tick := time.NewTicker(flushTick)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-s.flushKick:
		}
		t := s.cluster.Table()
		for i := worker; i < len(s.parts); i += flushWorkers {
			if t.Owner(partition.ID(i)) == s.self {
				for s.flushOnce(s.parts[i]) {
				}
			}
		}
	}
}

// hasWriteBehind reports whether any map of this member writes behind (and so needs flushers).
func (s *Service) hasWriteBehind() bool {
	for _, ps := range s.stores {
		if ps.writeBehind() {
			return true
		}
	}
	return false
}

// kickFlushers wakes the flushers (a Flush is waiting).
func (s *Service) kickFlushers() {
	for range flushWorkers {
		select {
		case s.flushKick <- struct{}{}:
		default:
		}
	}
}

// flushOnce stores one due batch of each write-behind queue of partition p and reports whether
// any batch was stored (there may be more).
func (s *Service) flushOnce(p *part) bool {
	type due struct {
		ps    *persistence
		q     *writebehind.Queue
		batch []writebehind.Entry
		probe bool // the call probes a failing store (storeBreaker)
	}
	var work []due
	now := s.cfg.Now()
	p.mu.RLock()
	idle := len(p.queues) == 0
	p.mu.RUnlock()
	if idle {
		return false
	}
	p.mu.Lock()
	for name, q := range p.queues {
		ps := s.persistenceOf(name)
		if up := ps.breaker.recoveredAt(); !up.IsZero() {
			q.StoreRecovered(up)
		}
		ok, probe := ps.breaker.admit(now)
		if !ok {
			continue // the store is failing and another queue probes it
		}
		if b := q.Ready(now); len(b) > 0 {
			work = append(work, due{ps: ps, q: q, batch: b, probe: probe})
		} else {
			ps.breaker.release(probe)
		}
	}
	p.mu.Unlock()
	stored := false
	for _, d := range work {
		err := s.storeBatch(d.ps, d.batch)
		end := s.cfg.Now()
		p.mu.Lock()
		if err != nil {
			d.q.Fail(d.batch, end, err)
		} else {
			d.q.Ack(d.batch)
		}
		p.mu.Unlock()
		opened, closed, outage := d.ps.breaker.done(d.probe, end, err)
		switch {
		case opened:
			s.log.Warn("write-behind store failing: dirty entries are kept and replicated; one call at a time probes the store",
				"map", d.ps.name, "partition", p.id, "err", err)
		case closed:
			s.log.Info("write-behind store back: storing the dirty entries", "map", d.ps.name, "outage", outage)
			s.kickFlushers() // every queue stores now, not at its own retry time
		case err != nil:
			s.log.Debug("write-behind store still failing", "map", d.ps.name, "partition", p.id, "err", err)
		}
		if err != nil {
			continue
		}
		stored = true
		s.replicateStored(p.id, d.ps.name, d.batch)
	}
	return stored
}

// storeBatch writes one batch (distinct keys) with the store's batch calls when it has them.
func (s *Service) storeBatch(ps *persistence, batch []writebehind.Entry) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OperationTimeout)
	defer cancel()
	var keys, values, deletes [][]byte
	for _, e := range batch {
		if e.Delete {
			deletes = append(deletes, e.Key)
		} else {
			keys = append(keys, e.Key)
			values = append(values, e.Value)
		}
	}
	ps.storeCalls.Add(1)
	err := func() error {
		if ps.batch != nil {
			if len(keys) > 0 {
				if err := s.rejectedBy(ps, ps.batch.StoreAll(ctx, keys, values)); err != nil {
					return err
				}
			}
			if len(deletes) > 0 {
				return s.rejectedBy(ps, ps.batch.DeleteAll(ctx, deletes))
			}
			return nil
		}
		for i := range keys {
			if err := s.rejectedBy(ps, ps.store.Store(ctx, keys[i], values[i])); err != nil {
				return err
			}
		}
		for _, k := range deletes {
			if err := s.rejectedBy(ps, ps.store.Delete(ctx, k)); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		ps.failed(err)
	}
	return err
}

// replicateStored tells the partition's other holders that a batch is stored, so that their
// queues forget it. Best effort: a holder that misses it stores the entries again if promoted
// (store calls are idempotent).
func (s *Service) replicateStored(p partition.ID, mapName string, batch []writebehind.Entry) {
	muts := make([]mutation, len(batch))
	for i, e := range batch {
		muts[i] = mutation{Map: mapName, Kind: mutStored, Key: e.Key, Seq: e.Seq}
	}
	t := s.cluster.Table()
	header, body, err := encodeBatch(int32(p), t.Epoch, string(s.self), muts)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, m := range replicaTargets(t, p, s.self) {
		wg.Go(func() { _ = s.sendBatch(ctx, m, msgBackup, header, body) })
	}
	wg.Wait()
}

// flushPartition makes the owner store every write of the map in partition p made before the
// call; it returns once they are stored, when ownership moves (ErrWrongOwner: the caller
// retries at the new owner, where the entries went), or when ctx ends.
func (s *Service) flushPartition(ctx context.Context, p *part, req *opRequest) opResponse {
	if st, ep := s.checkOwner(ctx, p.id, req.Epoch, req.deadline); st != statusOK {
		return opResponse{Status: st, Epoch: ep}
	}
	p.mu.Lock()
	q := p.queues[req.Map]
	var seq uint64
	if q != nil {
		seq = q.RequestFlush()
	}
	p.mu.Unlock()
	if q == nil {
		return opResponse{Done: true}
	}
	s.kickFlushers()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		p.mu.Lock()
		done := p.queues[req.Map] != q || q.Flushed(seq)
		moved := p.queues[req.Map] != q
		p.mu.Unlock()
		if moved {
			return opResponse{Status: statusWrongOwner, Epoch: s.cluster.Table().Epoch}
		}
		if done {
			return opResponse{Done: true}
		}
		if s.cluster.Table().Owner(p.id) != s.self {
			return opResponse{Status: statusWrongOwner, Epoch: s.cluster.Table().Epoch}
		}
		select {
		case <-ctx.Done():
			return opResponse{Status: statusTimeout, Msg: fmt.Sprintf("flush of partition %d: %v", p.id, ctx.Err())}
		case <-s.ctx.Done():
			return opResponse{Status: statusClosed}
		case <-poll.C:
		}
	}
}

// FlushLocal stores every dirty entry of the partitions this member owns (Member.Close uses it
// when no other member can take them).
func (s *Service) FlushLocal(ctx context.Context) error {
	t := s.cluster.Table()
	var errs []error
	for name := range s.stores {
		for _, p := range s.parts {
			if t.Owner(p.id) != s.self {
				continue
			}
			resp := s.flushPartition(ctx, p, &opRequest{Map: name, Kind: opFlush, Part: int32(p.id), Epoch: t.Epoch})
			if resp.Status != statusOK {
				errs = append(errs, resp.Status.err(resp.Msg))
			}
		}
	}
	return errors.Join(errs...)
}

// dropQueues empties partition p's write-behind queues (the member no longer holds it); the
// caller holds p.mu.
func (p *part) dropQueues() {
	for name, q := range p.queues {
		q.Drop()
		delete(p.queues, name)
	}
}

// PersistenceStats describes a map's store on this member: its write-behind queues on the
// partitions this member owns, and its store calls.
type PersistenceStats struct {
	DirtyEntries int
	DirtyBytes   int64
	OldestDirty  time.Duration
	StoreCalls   uint64
	StoreErrors  uint64
	Retries      uint64
	LastError    error
	LastErrorAt  time.Time
	// Rejected counts the entries the store refused for good (mapstore.ErrRejected, such as a
	// document the database's mapping refuses): they are not stored and not retried; the map
	// keeps them in memory. LastRejected is the last such refusal.
	Rejected       uint64
	LastRejected   error
	LastRejectedAt time.Time
}

// PersistenceStats returns the store statistics of a map on this member.
func (s *Service) PersistenceStats(mapName string) PersistenceStats {
	ps := s.persistenceOf(mapName)
	if ps == nil {
		return PersistenceStats{}
	}
	st := PersistenceStats{StoreCalls: ps.storeCalls.Load(), StoreErrors: ps.storeErrors.Load()}
	if e := ps.lastError.Load(); e != nil {
		st.LastError, st.LastErrorAt = e.err, e.at
	}
	st.Rejected = ps.rejected.Load()
	if e := ps.lastRejected.Load(); e != nil {
		st.LastRejected, st.LastRejectedAt = e.err, e.at
	}
	t := s.cluster.Table()
	now := s.cfg.Now()
	for _, p := range s.parts {
		if t.Owner(p.id) != s.self {
			continue
		}
		p.mu.RLock()
		if q := p.queues[mapName]; q != nil {
			qs := q.Stats(now)
			st.DirtyEntries += qs.Entries
			st.DirtyBytes += qs.Bytes
			st.OldestDirty = max(st.OldestDirty, qs.OldestAge)
			st.Retries += qs.Retries
		}
		p.mu.RUnlock()
	}
	return st
}
