package node

import (
	"context"
	"errors"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/examples/socorro/processor"
	"github.com/gridmap/gridmap/listener"
)

// processOne processes the crash whose process entry is id, on the entry's owner, and removes
// the entry. A crash already processed keeps its processed crash (a second event, or the sweeper
// racing the listener): only the process entry is removed. On failure the entry stays for the
// sweeper.
func (n *Node) processOne(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if n.cfg.beforeProcess != nil {
		n.cfg.beforeProcess(ctx, id)
	}
	// A miss of processedCrashes reads through to its store: while the store is unreachable
	// (ErrStore) the check cannot tell, and the crash is processed anyway: PutIfAbsent below
	// decides on the grid's copy, so the pipeline goes on while the store is down.
	if ok, err := n.processed.ContainsKey(ctx, id); err != nil && !errors.Is(err, dmap.ErrStore) {
		n.log.Warn("process: check processed", "id", id, "err", err)
		return
	} else if !ok {
		// The report and the process entry are written in one co-keyed transaction, and a
		// listener hears of a write only once reads see it: the report is there.
		raw, err := n.reports.Get(ctx, id)
		if errors.Is(err, dmap.ErrNotFound) {
			// Not expected (see above); the entry stays, and the sweeper tries again.
			n.log.Warn("process: report not found", "id", id)
			return
		}
		if err != nil {
			n.log.Warn("process: read report", "id", id, "err", err)
			return
		}
		pc := processor.Process(&processor.Raw{
			ID:             raw.ID,
			Submitted:      raw.Submitted,
			Annotations:    raw.Annotations,
			Dumps:          raw.Dumps,
			CollectorNotes: raw.Metadata.CollectorNotes,
		}, n.cfg.Rules, time.Now().UTC())
		added, err := n.processed.PutIfAbsent(ctx, id, pc)
		if err != nil {
			n.log.Warn("process: write processed crash", "id", id, "err", err)
			return
		}
		if added {
			now := time.Now()
			n.processedRate.add(now)
			n.history.add(Summary{ID: id, Product: pc.Product, Version: pc.Version, Signature: pc.Signature, Reason: pc.Reason, Processed: now})
		}
	}
	if _, err := n.process.Delete(ctx, id); err != nil {
		n.log.Warn("process: remove process entry", "id", id, "err", err)
	}
}

// sweepLoop sweeps every SweepEvery, and at once after a listener overflow, until ctx ends.
// Besides the entries older than SweepAge, every sweep (the first at once) processes those that
// arrived before the node started: after a restart of the cluster on its data folders the
// process entries are restored but no listener saw them arrive, and the work queue (ModeQueue)
// is not persisted, so nothing else would process them before SweepAge. Every sweep, not only
// the first: partitions still move to this node after its start, with their restored entries.
func (n *Node) sweepLoop(ctx context.Context, started time.Time) {
	cutoff := func() time.Time {
		if t := time.Now().Add(-n.cfg.SweepAge); t.After(started) {
			return t
		}
		return started
	}
	n.sweep(ctx, cutoff())
	t := time.NewTicker(n.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.sweepNow:
		}
		n.sweep(ctx, cutoff())
	}
}

// sweep processes this node's process entries that arrived before older: the crashes whose
// events were lost (overflow) or delivered to a member that lost the partition (failover,
// migration).
func (n *Node) sweep(ctx context.Context, older time.Time) {
	var ids []string
	for e, err := range n.process.LocalEntries() {
		if err != nil {
			n.log.Warn("sweep", "err", err)
			break
		}
		if e.Value.Before(older) {
			ids = append(ids, e.Key)
		}
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		n.processOne(ctx, id)
	}
	if len(ids) > 0 {
		n.log.Info("swept", "crashes", len(ids))
	}
}

// backlog counts this node's process entries: crashes waiting to be processed here.
func (n *Node) backlog() int {
	c := 0
	for _, err := range n.process.LocalEntries() {
		if err != nil {
			break
		}
		c++
	}
	return c
}

// listen registers ModeListener's local entry listener on map process: this node processes each
// crash it owns as its entry arrives; an overflow (events dropped) starts a sweep at once.
func (n *Node) listen(ctx, runCtx context.Context) (*dmap.ListenerHandle, error) {
	return n.process.AddLocalEntryListener(ctx, func(ev dmap.EntryEvent[string, time.Time]) {
		switch ev.Kind {
		case listener.Added, listener.Updated:
			n.processOne(runCtx, ev.Key)
		case listener.Overflow:
			// Events were dropped: their entries wait in process; sweep them now rather than
			// at the next tick.
			select {
			case n.sweepNow <- struct{}{}:
			default:
			}
		}
	}, dmap.ListenerOptions[string]{QueueSize: 4096})
}
