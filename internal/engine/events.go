package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// This file holds entry events: the observer that turns an owner's applied mutations (and its
// expiry sweep) into listener.Events, the local listener registrations, and the predicate
// registry shared with the cluster-wide listeners (cluster_listener.go).

// RawPredicate compiles a predicate's argument into the filter an owner runs on each event of a
// listener that names it. It runs once per registration and member; the returned filter runs
// on the publishing goroutine, under the partition's write lock (see listener.Options.Predicate):
// it must be fast, must not block or call the map, and must not keep the event's slices. It
// sees the event's values whatever the listener's IncludeValues says.
type RawPredicate func(arg []byte) (func(listener.Event) bool, error)

// predicates is a member's registry of named event predicates.
type predicates struct {
	mu     sync.RWMutex
	byName map[string]RawPredicate
}

// RegisterPredicate installs an event predicate under name on this member. Register the same
// predicates on every member (owners run them). A name already taken on this member is refused
// with ErrAlreadyRegistered rather than replaced: listeners registered before and after a
// replacement would filter the same name differently.
func (s *Service) RegisterPredicate(name string, p RawPredicate) error {
	if name == "" || p == nil {
		return fmt.Errorf("%w: predicate needs a name and a function", ErrInvalidConfig)
	}
	s.events.preds.mu.Lock()
	defer s.events.preds.mu.Unlock()
	if s.events.preds.byName == nil {
		s.events.preds.byName = make(map[string]RawPredicate)
	}
	if _, taken := s.events.preds.byName[name]; taken {
		return fmt.Errorf("%w: predicate %q", ErrAlreadyRegistered, name)
	}
	s.events.preds.byName[name] = p
	return nil
}

// CompilePredicate returns the filter of a named predicate with its argument, or ErrNoPredicate.
func (s *Service) CompilePredicate(name string, arg []byte) (func(listener.Event) bool, error) {
	s.events.preds.mu.RLock()
	p := s.events.preds.byName[name]
	s.events.preds.mu.RUnlock()
	if p == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoPredicate, name)
	}
	f, err := p(arg)
	if err != nil {
		return nil, fmt.Errorf("%w: predicate %q: %w", ErrInvalidConfig, name, err)
	}
	if f == nil {
		return nil, fmt.Errorf("%w: predicate %q returned no filter", ErrInvalidConfig, name)
	}
	return f, nil
}

// eventHub is a member's event machinery: the dispatcher of its local listeners, the predicate
// registry, the cluster-wide registrations and the partition listeners.
type eventHub struct {
	s     *Service
	local *listener.Dispatcher
	preds predicates
	cw    clusterListeners
	parts partitionListeners
}

func newEventHub(s *Service) (*eventHub, error) {
	cfg := listener.Config{Member: s.self, Logger: s.log}
	if s.mem != nil {
		cfg.Held = s.mem.add // the memory budget counts the events listeners' queues hold
	}
	d, err := listener.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	h := &eventHub{s: s, local: d}
	h.cw.init()
	return h, nil
}

// start launches the hub's goroutines (they end with the service's context).
func (h *eventHub) start() {
	h.s.wg.Add(2)
	go h.s.runRegistry()
	t, changed := h.s.cluster.Watch()
	go h.s.runPartitionEvents(t, changed)
}

// close stops every listener: what is queued is delivered for a short while, then discarded.
func (h *eventHub) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h.local.Close(ctx)
	h.cw.closeAll()
}

// listening reports whether anyone, here or elsewhere, listens to map name's events on this
// member.
func (h *eventHub) listening(name string) bool {
	return h.local.Listening(name) || h.cw.listening(name)
}

// listeningAny reports whether any listener at all is registered with this member.
func (h *eventHub) listeningAny() bool {
	return len(h.local.Registrations()) > 0 || h.cw.any()
}

// publish hands one event to the local listeners and to the cluster-wide registrations.
func (h *eventHub) publish(ev listener.Event) {
	h.local.Publish(ev)
	h.s.forwardEvent(&ev)
}

// ownerApplied implements observer: it turns the mutations an owner applied into events.
func (h *eventHub) ownerApplied(p partition.ID, muts []mutation, prevs []record) {
	for i := range muts {
		m := &muts[i]
		if len(m.Map) > 0 && m.Map[0] == 0 && !IsStructureMapName(m.Map) { // internal maps (transaction marks)
			continue
		}
		if !h.listening(m.Map) {
			continue
		}
		ev := listener.Event{Map: m.Map, Key: m.Key, Partition: p, Member: h.s.self, Seq: m.Seq}
		switch m.Kind {
		case mutSet:
			ev.Kind, ev.NewValue = listener.Added, m.Value
			if m.Clean {
				ev.Kind = listener.Loaded // read through or initially loaded from the store
			}
			if prevs[i].ok {
				ev.Kind, ev.OldValue = listener.Updated, prevs[i].value
			}
		case mutDelete:
			if !prevs[i].ok {
				continue
			}
			ev.Kind, ev.OldValue = listener.Removed, prevs[i].value
		case mutClear:
			now := h.s.now()
			for _, r := range m.cleared {
				if r.expired(now) {
					continue
				}
				h.publish(listener.Event{Map: m.Map, Kind: listener.Removed, Key: []byte(r.key), Partition: p, Member: h.s.self, Seq: m.Seq, OldValue: r.value})
			}
			continue
		default: // lock changes
			continue
		}
		h.publish(ev)
	}
}

// sweepExpired removes expired entries from every partition this member holds. On the
// partitions it owns, while anyone listens, the removals become Expired events, published with
// the partition's writes held back so they stay in order with the writes' events; a partition
// whose writes are busy (a replication or a hand-off in progress) is swept at a later tick.
// Backups expire silently.
func (s *Service) sweepExpired(now int64) {
	var t *partition.Table
	if s.events.listeningAny() {
		t = s.cluster.Table()
	}
	for _, p := range s.parts {
		p.mu.RLock()
		none := p.rs.ttls == 0
		p.mu.RUnlock()
		if none {
			continue // nothing in the partition can expire
		}
		if t == nil || t.Owner(p.id) != s.self {
			p.mu.Lock()
			s.unpersistExpired(p, p.rs.expire(now))
			p.mu.Unlock()
			continue
		}
		if !p.writeMu.TryLock() {
			continue
		}
		p.mu.Lock()
		var evs []listener.Event
		var gone []expiredEntry
		seq := p.rs.seq
		for name := range p.rs.maps {
			listened := len(name) > 0 && name[0] != 0 && s.events.listening(name)
			for r := range p.rs.all(name) {
				if !r.expired(now) {
					continue
				}
				if listened {
					// A paged-out value is read from the data folder, which keeps expired
					// entries (a value that cannot be read is told as none).
					full, _ := p.rs.fill(name, r)
					evs = append(evs, listener.Event{Map: name, Kind: listener.Expired, Key: []byte(r.key), Partition: p.id, Member: s.self, Seq: seq, OldValue: full.value})
				}
				p.rs.remove(name, r)
				gone = append(gone, expiredEntry{name, r.key})
			}
		}
		s.unpersistExpired(p, gone)
		p.mu.Unlock()
		for _, ev := range evs {
			s.events.publish(ev)
		}
		p.writeMu.Unlock()
	}
}
