package engine

import (
	"slices"
	"time"

	"github.com/gridmap/gridmap/listener"
)

// evictInterval is how often the evictor compares the member's memory with its budget, besides
// running whenever a write waits for room (memAccount.kickEvictor).
const evictInterval = 100 * time.Millisecond

// evictHigh is the fraction of the budget above which the evictor evicts, before writes have to
// wait for room; evictTarget the fraction it brings memory down to, so that it does not run
// again at once.
const (
	evictHigh   = 0.95
	evictTarget = 0.9
)

// memoryUsed sums the approximate memory of the records this member holds.
func (s *Service) memoryUsed() int64 {
	var total int64
	for _, p := range s.parts {
		p.mu.RLock()
		total += p.rs.bytes
		if p.shadow != nil {
			total += p.shadow.rs.bytes
		}
		p.mu.RUnlock()
	}
	return total
}

// MemoryUsed is the memory Config.MemoryBudget counts on this member now (see memory.go): its
// records, those of copies it is receiving, and the events its listeners' queues hold. 0 without
// a budget.
func (s *Service) MemoryUsed() int64 { return s.mem.load() }

// runEvictor keeps the member's records within Config.MemoryBudget by evicting clean entries of
// maps with a loader, and paging out entries of embedded maps (paging.go), least recently used
// first, from evictHigh of the budget down to evictTarget, and at once when a write waits for
// room. Dirty entries (not stored yet) and entries of maps with neither a loader nor the data
// folder are never evicted: they are the only copy. Nor are structure maps' entries
// (StructureMapName): their façades read them in partition processors, which do not read
// through. An evicted entry is read through again on its next use; a paged-out one is read from
// the folder. What cannot be evicted is bounded by write admission instead (memory.go).
func (s *Service) runEvictor() {
	defer s.wg.Done()
	a := s.mem
	if a == nil || (len(s.stores) == 0 && s.cfg.Disk == nil) {
		return // nothing could ever be evicted
	}
	tick := time.NewTicker(evictInterval)
	defer tick.Stop()
	high, target := int64(float64(a.budget)*evictHigh), int64(float64(a.budget)*evictTarget)
	warned := false
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-a.evict:
		}
		used, need := a.load(), a.need.Swap(0)
		if used <= high && need == 0 {
			warned = false
			continue
		}
		want := used + need - target
		if want <= 0 {
			continue
		}
		freed := s.evict(want)
		if used-freed > high && !warned {
			warned = true
			s.log.Warn("memory budget nearly used up by entries that cannot be evicted (dirty, of maps without a loader or data folder, or keys of paged-out entries): growing writes wait, then fail with ErrMemoryLimit",
				"used", used-freed, "budget", a.budget)
		}
	}
}

type evictCandidate struct {
	p       *part
	mapName string
	r       record
	page    bool // page the value out (an embedded map) rather than evict the entry
}

// evict removes up to want bytes of clean, loadable entries and values of embedded maps' entries
// (paging them out), oldest access first, and returns the bytes freed.
func (s *Service) evict(want int64) int64 {
	var cands []evictCandidate
	for _, p := range s.parts {
		p.mu.RLock()
		_, pageable := s.pageSource(p)
		for name := range p.rs.maps {
			if pageable && s.embedded(name) {
				for r := range p.rs.all(name) {
					if !r.paged && len(r.value) > 0 {
						cands = append(cands, evictCandidate{p: p, mapName: name, r: r, page: true})
					}
				}
				continue
			}
			ps := s.persistenceOf(name)
			if ps == nil || ps.loader == nil || IsStructureMapName(name) {
				// A structure's façade reads its entries in partition processors, which do not
				// read through: they stay in memory.
				continue
			}
			q := p.queues[name]
			for r := range p.rs.all(name) {
				if pending, _ := pendingIn(q, []byte(r.key)); !pending {
					cands = append(cands, evictCandidate{p: p, mapName: name, r: r})
				}
			}
		}
		p.mu.RUnlock()
	}
	slices.SortFunc(cands, func(a, b evictCandidate) int {
		switch {
		case a.r.access < b.r.access:
			return -1
		case a.r.access > b.r.access:
			return 1
		}
		return 0
	})
	var freed int64
	t := s.cluster.Table()
	for _, c := range cands {
		if freed >= want {
			break
		}
		if c.page {
			freed += s.pageOutCandidate(c)
			continue
		}
		// On an owned partition the eviction is an event: take the partition's writes, so that
		// it is published in order with theirs (a busy partition is skipped this time).
		owned := t.Owner(c.p.id) == s.self && s.events.listening(c.mapName)
		if owned && !c.p.writeMu.TryLock() {
			continue
		}
		c.p.mu.Lock()
		evicted := false
		// Evict only what was examined: not rewritten since (a write has a new sequence
		// number), still not dirty.
		if cur := c.p.rs.lookup(c.mapName, c.r.key); cur.ok && cur.seq == c.r.seq {
			if pending, _ := pendingIn(c.p.queues[c.mapName], []byte(c.r.key)); !pending {
				c.p.rs.remove(c.mapName, cur)
				freed += recordSize(cur)
				evicted = true
			}
		}
		c.p.mu.Unlock()
		if owned {
			if evicted {
				s.events.publish(listener.Event{Map: c.mapName, Kind: listener.Evicted, Key: []byte(c.r.key),
					Partition: c.p.id, Member: s.self, Seq: c.r.seq, OldValue: c.r.value})
			}
			c.p.writeMu.Unlock()
		}
	}
	return freed
}

// pageOutCandidate pages out the value of candidate c, an entry of an embedded map, if it is
// still as examined and the partition may page out (paging.go), and returns the bytes freed. It
// needs no event nor the partition's writes: the entry stays in the map.
func (s *Service) pageOutCandidate(c evictCandidate) int64 {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	from, ok := s.pageSource(c.p)
	if !ok {
		return 0
	}
	// Not rewritten since (a write has a new sequence number), nor paged out already.
	if cur := c.p.rs.lookup(c.mapName, c.r.key); cur.ok && cur.seq == c.r.seq && !cur.paged && len(cur.value) > 0 {
		return c.p.rs.pageOut(c.mapName, cur, from)
	}
	return 0
}
