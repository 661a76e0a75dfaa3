package queue

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/listener"
)

// kind is the structure kind of queues' maps (engine.StructureMapName).
const kind = "queue"

// Names of what the queue service registers on its member's engine.
const (
	procOffer  = "queue.offer"
	procPoll   = "queue.poll"
	procUnpoll = "queue.unpoll"
	procPeek   = "queue.peek"
	procSize   = "queue.size"
	procClear  = "queue.clear"
	predItems  = "queue.items"
	structName = "\x00" + kind + "\x00"
)

// Service is a member's queue service: New opens a queue on it. gridmap.Member.Queues returns
// it. It holds no queue: the queues live in the member's partitions, so it needs no closing
// (the member's Close stops everything).
type Service struct {
	e       *engine.Service
	configs map[string]Config
	waits   waiters
	// returned, holding, lost and unknown are GiveBackStats: the items giveBack put back at a
	// queue's head, holds now, held when the member closed; the removals it could not settle.
	returned, holding, lost, unknown atomic.Uint64
	// recovery is how long a take sends its unanswered poll again before its caller hears of
	// the timeout (takeRecovery; tests shorten it): the poll is then settled in the background.
	recovery time.Duration
}

// WrapEngine returns the queue service of a member's engine, with the queues' configurations
// by name (queues not named get the zero Config). It registers the queue's partition
// processors and event predicate on the engine, so call it once per engine, on every member:
// a second call on the same engine fails with dmap.ErrAlreadyRegistered. It is how the gridmap
// package builds a Member's service; applications get theirs from gridmap.Member.Queues and
// never call it (the engine is internal to gridmap).
func WrapEngine(e *engine.Service, configs map[string]Config) (*Service, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil engine", ErrInvalidConfig)
	}
	s := &Service{e: e, configs: make(map[string]Config, len(configs)), recovery: takeRecovery}
	for name, c := range configs {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("queue %q: %w", name, err)
		}
		s.configs[name] = c.WithDefaults()
	}
	s.waits.s, s.waits.recheck = s, recheckInterval
	procs := []struct {
		name string
		fn   engine.RawPartitionProcessor
	}{
		{procOffer, s.offerProc},
		{procPoll, s.pollProc},
		{procUnpoll, func(_ context.Context, v *engine.PartitionView, arg []byte) ([]byte, error) {
			items, err := decodeItems(arg)
			if err != nil {
				return nil, err
			}
			return unpoll(v, items)
		}},
		{procPeek, func(_ context.Context, v *engine.PartitionView, _ []byte) ([]byte, error) { return peek(v) }},
		{procSize, func(_ context.Context, v *engine.PartitionView, _ []byte) ([]byte, error) { return size(v) }},
		{procClear, s.clearProc},
	}
	for _, p := range procs {
		if err := e.RegisterPartitionProcessor(p.name, p.fn); err != nil {
			return nil, err
		}
	}
	if err := e.RegisterPredicate(predItems, itemsPredicate); err != nil {
		return nil, err
	}
	return s, nil
}

// config returns the configuration of the queue whose structure map is mapName.
func (s *Service) config(mapName string) Config {
	return s.configs[strings.TrimPrefix(mapName, structName)]
}

func (s *Service) offerProc(_ context.Context, v *engine.PartitionView, arg []byte) ([]byte, error) {
	items, err := decodeItems(arg)
	if err != nil {
		return nil, err
	}
	return offer(v, uint64(s.config(v.Map()).Capacity), items)
}

func (s *Service) pollProc(_ context.Context, v *engine.PartitionView, arg []byte) ([]byte, error) {
	n, err := uvarints(arg, 2)
	if err != nil {
		return nil, err
	}
	return poll(v, int(min(n[0], 1<<30)), int(min(n[1], 1<<40)))
}

func (s *Service) clearProc(_ context.Context, v *engine.PartitionView, arg []byte) ([]byte, error) {
	n, err := uvarints(arg, 1)
	if err != nil {
		return nil, err
	}
	return clearChunk(v, n[0], clearBatch)
}

// itemsPredicate passes the events of items being added and removed (not those of the head and
// tail entry, nor loads after a restart).
func itemsPredicate([]byte) (func(listener.Event) bool, error) {
	return func(ev listener.Event) bool {
		return isItemKey(ev.Key) && (ev.Kind == listener.Added || ev.Kind == listener.Removed)
	}, nil
}
