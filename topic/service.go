package topic

import (
	"context"
	"fmt"
	"sync"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// Service is a member's topic service: New opens a topic on it, PublishBytes publishes raw bytes
// by a topic's name. gridmap.Member.Topics returns it. It holds, per topic this member
// subscribes to, one cluster-wide registration that fans the topic's messages out to the
// member's subscribers (hub.go); it lives as long as the member.
type Service struct {
	e      *engine.Service
	regErr error // registering the processors failed: every topic fails with it

	mu      sync.Mutex
	hubs    map[string]*hub
	figures map[string]*counts // figures.go
}

// WrapEngine returns the topic service of a member's engine and installs the topic's partition
// processors on it, which every member needs: a topic's owner runs them. It is how the gridmap
// package builds a Member's Service; applications get theirs from gridmap.Member.Topics and
// never call it (the engine is internal to gridmap).
func WrapEngine(e *engine.Service) *Service {
	if e == nil {
		return nil
	}
	return &Service{e: e, regErr: register(e), hubs: make(map[string]*hub), figures: make(map[string]*counts)}
}

// PublishBytes publishes payload as it is to the topic called name, with the ring the topic
// already has (a plain topic's when it has none yet), and returns its sequence number. It is
// the untyped entry point for tools that know a topic by name only (a console's form): the
// subscribers decode payload with their topic's codec, so it must be what that codec reads
// (for a Topic[string] or Topic[[]byte], any bytes). payload is not kept.
func (s *Service) PublishBytes(ctx context.Context, name string, payload []byte) (uint64, error) {
	raw, p, err := s.open(name)
	if err != nil {
		return 0, err
	}
	seq, err := publishRaw(ctx, raw, p, 0, payload)
	if err == nil {
		s.counts(name).published.Add(1)
	}
	return seq, err
}

// open returns the handle of a topic's structure map and the partition it lives in.
func (s *Service) open(name string) (*engine.Map, partition.ID, error) {
	if s == nil {
		return nil, 0, fmt.Errorf("%w: nil topic service", ErrInvalidConfig)
	}
	if s.regErr != nil {
		return nil, 0, s.regErr
	}
	if err := engine.CheckMapName(name); err != nil {
		return nil, 0, err
	}
	p := s.e.PartitionOf([]byte(name))
	raw, err := s.e.OpenStructureMap(structureKind, name, func([]byte) (partition.ID, error) { return p, nil })
	if err != nil {
		return nil, 0, err
	}
	return raw, p, nil
}

// hub returns the member's hub of the topic called name.
func (s *Service) hub(name string, raw *engine.Map, p partition.ID) *hub {
	c := s.counts(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hubs[name]
	if h == nil {
		h = &hub{raw: raw, part: p, subs: make(map[*sink]struct{}), counts: c}
		s.hubs[name] = h
	}
	return h
}
