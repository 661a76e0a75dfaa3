package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/internal/writebehind"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/partition"
)

// loadMarkMap is the internal map recording, per partition, which maps' initial load is done:
// key = map name. The marks travel with backups and migrations, so a member that takes a
// partition over does not load it again.
const loadMarkMap = "\x00load"

// flight is one read-through load in progress; other readers of the same key wait for it.
type flight struct {
	done  chan struct{}
	value []byte
	found bool
	err   error
}

// flights de-duplicates concurrent read-through loads of one key on its owner.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// readThrough answers a Get or ContainsKey miss of a map with a loader: the owner loads the
// key once (concurrent misses of the key share the load) and keeps it as a clean entry,
// replicated to the backups. A key with a pending write-behind delete stays missing: the
// store's value is older than the delete.
func (s *Service) readThrough(ctx context.Context, p *part, req *opRequest, miss opResponse) opResponse {
	ps := s.persistenceOf(req.Map)
	if ps == nil || ps.loader == nil {
		return miss
	}
	p.mu.RLock()
	pending := false
	if q := p.queues[req.Map]; q != nil {
		pending, _ = q.Pending(req.Key)
	}
	p.mu.RUnlock()
	if pending {
		return miss
	}
	id := req.Map + "\x00" + string(req.Key)
	s.loads.mu.Lock()
	if s.loads.m == nil {
		s.loads.m = make(map[string]*flight)
	}
	f, waiting := s.loads.m[id]
	if !waiting {
		f = &flight{done: make(chan struct{})}
		s.loads.m[id] = f
	}
	s.loads.mu.Unlock()
	if waiting {
		select {
		case <-f.done:
		case <-ctx.Done():
			return opResponse{Status: statusTimeout, Msg: "read-through: " + ctx.Err().Error()}
		}
	} else {
		f.value, f.found, f.err = ps.loader.Load(ctx, req.Key)
		if f.err != nil {
			ps.failed(f.err)
			f.err = fmt.Errorf("%w: map %s: read-through: %w", ErrStore, req.Map, f.err)
		} else if f.found {
			f.value, f.found, f.err = s.keepLoaded(ctx, p, req, f.value)
		}
		s.loads.mu.Lock()
		delete(s.loads.m, id)
		s.loads.mu.Unlock()
		close(f.done)
	}
	if f.err != nil {
		return opResponse{Status: statusOf(f.err), Msg: f.err.Error()}
	}
	if !f.found {
		return miss
	}
	if req.Kind == opContains {
		return opResponse{Done: true}
	}
	return opResponse{Done: true, Value: f.value}
}

// keepLoaded stores a loaded value in the partition unless a write got there first, and
// returns what the map holds for the key.
func (s *Service) keepLoaded(ctx context.Context, p *part, req *opRequest, value []byte) ([]byte, bool, error) {
	var out []byte
	var found bool
	// One attempt: a read does not wait for memory. Without room for it (memory.go), the value
	// is answered without being kept, and read through again next time.
	resp, _, refused := s.ownerWriteOnce(ctx, p, req.Epoch, req.deadline, nil, func(w *writeBatch) opResponse {
		if r := w.rs.get(req.Map, string(req.Key), w.now); r.ok {
			out, found = r.value, true
			return opResponse{}
		}
		if q := p.queues[req.Map]; q != nil {
			if pending, _ := q.Pending(req.Key); pending {
				return opResponse{} // deleted meanwhile
			}
		}
		w.emit(mutation{Map: req.Map, Kind: mutSet, Key: req.Key, Value: value, Clean: true})
		out, found = value, true
		return opResponse{}
	})
	if refused {
		s.mem.kickEvictor(int64(len(req.Key) + len(value) + recordOverhead))
		return value, true, nil
	}
	if resp.Status != statusOK {
		return nil, false, resp.Status.err(resp.Msg)
	}
	return out, found, nil
}

// keyLoader returns the map's key loader, if it has one.
func (ps *persistence) keyLoader() (mapstore.KeyLoader, bool) {
	if ps == nil {
		return nil, false
	}
	kl, ok := ps.loader.(mapstore.KeyLoader)
	return kl, ok
}

// initialLoad makes this member trigger the cluster-wide initial load of a map once: the first
// caller runs the first attempt and waits for it (bounded by ctx); if it fails, a goroutine of
// the service retries with the map's backoff until it succeeds. Later callers return at once.
func (s *Service) initialLoad(ctx context.Context, mapName string, partOf func(key []byte) (partition.ID, error)) {
	if _, started := s.loaded.LoadOrStore(mapName, true); started {
		return
	}
	ps := s.persistenceOf(mapName)
	err := s.triggerInitialLoad(ctx, mapName, partOf)
	if err == nil {
		return
	}
	s.log.Warn("initial load failed, retrying in the background", "map", mapName, "err", err)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		wait := ps.cfg.RetryInitial
		for {
			timer := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			lctx, cancel := context.WithTimeout(s.ctx, s.cfg.OperationTimeout)
			err := s.triggerInitialLoad(lctx, mapName, partOf)
			cancel()
			if err == nil {
				s.log.Info("initial load done", "map", mapName)
				return
			}
			wait = min(wait*2, ps.cfg.RetryMax)
		}
	}()
}

// triggerInitialLoad runs the initial load of a map with a key loader for the whole cluster:
// this member reads the store's keys once, partitions them with partOf (the typed map's
// function), and sends every owner the keys of its partitions; each owner loads the partitions
// not marked loaded yet, one load at a time, and marks them. So every key is loaded once even
// when several members trigger the load at the same moment.
func (s *Service) triggerInitialLoad(ctx context.Context, mapName string, partOf func(key []byte) (partition.ID, error)) error {
	ps := s.persistenceOf(mapName)
	if ps == nil {
		return nil
	}
	kl, ok := ps.loader.(mapstore.KeyLoader)
	if !ok {
		return nil
	}
	t := s.cluster.Table()
	byOwner := map[partition.MemberID]map[int32][][]byte{}
	for i := range t.Partitions {
		owner := t.Owner(partition.ID(i))
		if byOwner[owner] == nil {
			byOwner[owner] = map[int32][][]byte{}
		}
		byOwner[owner][int32(i)] = nil // every owned partition gets marked, keys or not
	}
	err := kl.LoadAllKeys(ctx, func(key []byte) error {
		p, err := partOf(key)
		if err != nil {
			return err
		}
		parts := byOwner[t.Owner(p)]
		parts[int32(p)] = append(parts[int32(p)], append([]byte(nil), key...))
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: map %s: load all keys: %w", ErrStore, mapName, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(byOwner))
	for owner, parts := range byOwner {
		req := loadRequest{Map: mapName, Epoch: t.Epoch, Parts: parts}
		wg.Go(func() {
			var err error
			if owner == s.self {
				err = s.loadOwned(ctx, ps, req)
			} else {
				err = s.sendLoad(ctx, owner, req)
			}
			if err != nil {
				errs <- fmt.Errorf("initial load on %s: %w", owner, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

func (s *Service) sendLoad(ctx context.Context, m partition.MemberID, req loadRequest) error {
	body, err := encodeLoadRequest(&req)
	if err != nil {
		return err
	}
	addr, ok := s.cluster.MemberAddr(m)
	if !ok {
		return fmt.Errorf("dmap: no address for member %s", m)
	}
	out, err := s.caller.Call(ctx, addr, transport.Message{Type: msgLoad, Body: body})
	if err != nil {
		return err
	}
	resp, err := decodeResponse(out)
	if err != nil {
		return err
	}
	return resp.Status.err(resp.Msg)
}

// handleLoad serves msgLoad.
func (s *Service) handleLoad(ctx context.Context, msg transport.Message) (transport.Message, error) {
	req, err := decodeLoadRequest(msg.Body)
	if err != nil {
		return encodeResponse(opResponse{Status: statusBadRequest, Msg: "undecodable load request"})
	}
	ps := s.persistenceOf(req.Map)
	if ps == nil {
		return encodeResponse(opResponse{Status: statusBadRequest, Msg: "no store for map " + req.Map})
	}
	if err := s.loadOwned(ctx, ps, req); err != nil {
		return encodeResponse(opResponse{Status: statusOf(err), Msg: err.Error()})
	}
	return encodeResponse(opResponse{})
}

// loadOwned loads the given partitions' keys, for the partitions this member still owns and
// has not loaded yet. Keys already in the map (written since) keep their value.
func (s *Service) loadOwned(ctx context.Context, ps *persistence, req loadRequest) error {
	s.loadMu.Lock() // one initial load at a time on a member: concurrent triggers wait, then skip
	defer s.loadMu.Unlock()
	t := s.cluster.Table()
	for id, keys := range req.Parts {
		if id < 0 || int(id) >= len(s.parts) || t.Owner(partition.ID(id)) != s.self {
			continue
		}
		p := s.parts[id]
		p.mu.RLock()
		done := p.rs.get(loadMarkMap, ps.name, 0).ok
		p.mu.RUnlock()
		if done {
			continue
		}
		if err := s.loadPartition(ctx, ps, p, t.Epoch, keys); err != nil {
			return err
		}
	}
	return nil
}

// loadPartition loads keys of one partition and marks the partition's initial load done.
func (s *Service) loadPartition(ctx context.Context, ps *persistence, p *part, epoch uint64, keys [][]byte) error {
	for {
		n := min(len(keys), ps.cfg.BatchSize)
		batch := keys[:n]
		keys = keys[n:]
		var kvs []kv
		if len(batch) > 0 {
			err := loadBatch(ctx, ps.loader, batch, func(k, v []byte) { kvs = append(kvs, kv{Key: k, Value: v}) })
			if err != nil {
				return fmt.Errorf("%w: map %s: load: %w", ErrStore, ps.name, err)
			}
		}
		last := len(keys) == 0
		resp := s.ownerWrite(ctx, p, epoch, time.Time{}, nil, func(w *writeBatch) opResponse {
			q := p.queues[ps.name]
			for _, e := range kvs {
				if pending, _ := pendingIn(q, e.Key); pending {
					continue // written or deleted since: the store's value is older
				}
				if !w.rs.get(ps.name, string(e.Key), w.now).ok {
					w.emit(mutation{Map: ps.name, Kind: mutSet, Key: e.Key, Value: e.Value, Clean: true})
				}
			}
			if last && !w.rs.get(loadMarkMap, ps.name, w.now).ok {
				w.emit(mutation{Map: loadMarkMap, Kind: mutSet, Key: []byte(ps.name), Value: []byte{}})
			}
			return opResponse{}
		})
		if resp.Status != statusOK {
			return fmt.Errorf("initial load of partition %d: %w", p.id, resp.Status.err(resp.Msg))
		}
		if last {
			return nil
		}
	}
}

// pendingIn reports whether q (possibly nil) has an unstored write of key.
func pendingIn(q *writebehind.Queue, key []byte) (pending, deleted bool) {
	if q == nil {
		return false, false
	}
	return q.Pending(key)
}

// loadBatch loads keys with LoadAll when the loader has it, else one by one.
func loadBatch(ctx context.Context, l mapstore.Loader, keys [][]byte, fn func(k, v []byte)) error {
	if al, ok := l.(mapstore.AllLoader); ok {
		return al.LoadAll(ctx, keys, func(k, v []byte) error { fn(k, v); return nil })
	}
	for _, k := range keys {
		v, found, err := l.Load(ctx, k)
		if err != nil {
			return err
		}
		if found {
			fn(k, v)
		}
	}
	return nil
}
