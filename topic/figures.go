package topic

import (
	"slices"
	"strings"
	"sync/atomic"
)

// Figures is what one member did with one topic: the figures a console or a metrics scrape
// shows, summed over the members by whoever shows them.
type Figures struct {
	Name string
	// Published counts the messages published through this member; Received the messages
	// handed to this member's subscribers (one per subscriber); Subscribers is the number of
	// its subscribers now.
	Published, Received uint64
	Subscribers         int
}

// counts are a topic's figures on one member, shared by its Topic handles and its hub.
type counts struct {
	published, received atomic.Uint64
}

// counts returns the member's counts of the topic called name.
func (s *Service) counts(name string) *counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.figures[name]
	if c == nil {
		c = &counts{}
		s.figures[name] = c
	}
	return c
}

// Figures returns this member's figures of every topic it published to or subscribes to, by
// name. It reads counters only: cheap enough for every scrape.
func (s *Service) Figures() []Figures {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	out := make([]Figures, 0, len(s.figures))
	for name, c := range s.figures {
		f := Figures{Name: name, Published: c.published.Load(), Received: c.received.Load()}
		if h := s.hubs[name]; h != nil {
			h.mu.Lock()
			f.Subscribers = len(h.subs)
			h.mu.Unlock()
		}
		out = append(out, f)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Figures) int { return strings.Compare(a.Name, b.Name) })
	return out
}
