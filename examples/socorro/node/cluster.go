package node

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/processor"
	"github.com/gridmap/gridmap/mapstore/elasticsearch"
)

// StatsMap is the map of the nodes' page figures, by node name: each node publishes its own
// every PublishEvery, and every node's pages merge them into the cluster's view. It is small
// (one entry a node) and lives in memory only, with its backups.
const StatsMap = "socorroNodeStats"

// sigsPerMinute bounds the signatures a node publishes for one minute: the most frequent ones.
// A minute with more distinct signatures undercounts its rarest ones, never its top ones.
const sigsPerMinute = 500

// NodeStats is what one node publishes for the cluster's pages: its rates, the crashes it
// processed most recently, and the signatures it processed by minute over the last hour. A
// crash is counted by the one node whose PutIfAbsent wrote its processed crash, so the sums
// count each crash once.
type NodeStats struct {
	Name      string
	Published time.Time
	Rates     Rates
	Recent    []Summary
	// Minutes maps a minute (Unix time / 60) to the count of each signature processed in it.
	Minutes map[int64]map[string]int
}

// snapshot returns the history's figures for publishing: the recent crashes and the last hour's
// signatures by minute.
func (h *history) snapshot(now time.Time) ([]Summary, map[int64]map[string]int) {
	recent := h.Recent()
	since := now.Add(-time.Hour)
	h.mu.Lock()
	i := sort.Search(len(h.hour), func(i int) bool { return !h.hour[i].at.Before(since) })
	h.hour = append(h.hour[:0], h.hour[i:]...)
	minutes := map[int64]map[string]int{}
	for _, s := range h.hour {
		m := s.at.Unix() / 60
		if minutes[m] == nil {
			minutes[m] = map[string]int{}
		}
		minutes[m][s.sig]++
	}
	h.mu.Unlock()
	for m, sigs := range minutes {
		if len(sigs) > sigsPerMinute {
			minutes[m] = topN(sigs, sigsPerMinute)
		}
	}
	return recent, minutes
}

// topN keeps the n largest counts of sigs.
func topN(sigs map[string]int, n int) map[string]int {
	all := make([]SignatureCount, 0, len(sigs))
	for s, c := range sigs {
		all = append(all, SignatureCount{s, c})
	}
	sortCounts(all)
	out := make(map[string]int, n)
	for _, sc := range all[:n] {
		out[sc.Signature] = sc.Count
	}
	return out
}

// sortCounts sorts most frequent first, then by signature.
func sortCounts(s []SignatureCount) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Count != s[j].Count {
			return s[i].Count > s[j].Count
		}
		return s[i].Signature < s[j].Signature
	})
}

// publishStats puts this node's figures in StatsMap.
func (n *Node) publishStats(ctx context.Context) error {
	now := time.Now()
	recent, minutes := n.history.snapshot(now)
	return n.stats.Put(ctx, n.cfg.Name, &NodeStats{
		Name: n.cfg.Name, Published: now.UTC(), Rates: n.Rates(), Recent: recent, Minutes: minutes,
	})
}

// publishLoop publishes this node's figures every PublishEvery until ctx ends.
func (n *Node) publishLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.PublishEvery)
	defer t.Stop()
	for {
		if err := n.publishStats(ctx); err != nil && ctx.Err() == nil {
			n.log.Debug("publish page figures", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ClusterView is what the index page shows of the whole cluster.
type ClusterView struct {
	// Nodes are the figures each node published, by name.
	Nodes []NodeStats
	// Recent are the most recently processed crashes of the cluster, newest first.
	Recent []Summary
	// Top are the most frequent signatures of the last hour, most frequent first.
	Top []SignatureCount
	// TopTotal is the number of crashes Top counts over.
	TopTotal int64
	// Source says where Recent and Top come from: "grid" (the nodes' published figures) or
	// "elasticsearch" (a search of every stored processed crash).
	Source string
	// StoreErr is why the Elasticsearch search failed, when it did and the grid answered instead.
	StoreErr string
}

// Cluster returns the cluster's figures: from Elasticsearch when it keeps the processed crashes
// and answers, otherwise from the figures the nodes published in StatsMap.
func (n *Node) Cluster(ctx context.Context, recent, top int) (ClusterView, error) {
	var v ClusterView
	now := time.Now()
	since := now.Add(-time.Hour)
	for e, err := range n.stats.Entries(ctx) {
		if err != nil {
			return v, fmt.Errorf("node: read %s: %w", StatsMap, err)
		}
		v.Nodes = append(v.Nodes, *e.Value)
	}
	sort.Slice(v.Nodes, func(i, j int) bool { return v.Nodes[i].Name < v.Nodes[j].Name })
	if n.es != nil {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := n.searchView(sctx, &v, since, recent, top)
		cancel()
		if err == nil {
			v.Source = "elasticsearch"
			return v, nil
		}
		v.StoreErr = err.Error()
	}
	v.Source = "grid"
	counts := map[string]int{}
	for _, ns := range v.Nodes {
		v.Recent = append(v.Recent, ns.Recent...)
		for m, sigs := range ns.Minutes {
			if m < since.Unix()/60 {
				continue
			}
			for s, c := range sigs {
				counts[s] += c
				v.TopTotal += int64(c)
			}
		}
	}
	sort.Slice(v.Recent, func(i, j int) bool { return v.Recent[i].Processed.After(v.Recent[j].Processed) })
	if len(v.Recent) > recent {
		v.Recent = v.Recent[:recent]
	}
	for s, c := range counts {
		v.Top = append(v.Top, SignatureCount{s, c})
	}
	sortCounts(v.Top)
	if len(v.Top) > top {
		v.Top = v.Top[:top]
	}
	return v, nil
}

// searchView fills v's Recent and Top from Elasticsearch: the newest processed crashes, and a
// terms aggregation of the signatures of the crashes processed since since.
func (n *Node) searchView(ctx context.Context, v *ClusterView, since time.Time, recent, top int) error {
	hits, _, err := n.es.Find(ctx, elasticsearch.Query{Size: recent, Sort: json.RawMessage(`[{"completed_datetime":"desc"}]`)})
	if err != nil {
		return err
	}
	for _, h := range hits {
		var c processor.Crash
		if err := json.Unmarshal(h.Source, &c); err != nil {
			return fmt.Errorf("processed crash %s: %w", h.Key, err)
		}
		v.Recent = append(v.Recent, Summary{ID: c.ID, Product: c.Product, Version: c.Version, Signature: c.Signature, Reason: c.Reason, Processed: c.Processed})
	}
	rng, err := json.Marshal(map[string]any{"range": map[string]any{"completed_datetime": map[string]any{"gte": since.UTC().Format(time.RFC3339Nano)}}})
	if err != nil {
		return err
	}
	buckets, total, err := n.es.Count(ctx, elasticsearch.Query{Query: rng, Size: top}, "signature")
	if err != nil {
		return err
	}
	for _, b := range buckets {
		v.Top = append(v.Top, SignatureCount{b.Value, int(b.Count)})
	}
	v.TopTotal = total
	return nil
}
