package gridmap

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
	"github.com/gridmap/gridmap/queue"
	"github.com/gridmap/gridmap/topic"
)

// scrapeConsole reads a member console's /metrics with the Prometheus text parser.
func scrapeConsole(t *testing.T, m *Member) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + m.ConsoleAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// gather reads a registry's families by name.
func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// series returns the metric of family name whose labels include want, and whether there is one.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	f := fams[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// value returns the value of a counter or gauge series (0 if absent).
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m, ok := series(fams, name, labels)
	if !ok {
		return 0
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestMetricsCountWhatTheTestDid runs a known number of operations and reads them back from the
// console's /metrics, parsed with the Prometheus text parser, and from the registries passed in
// Config.Metrics: exact operation counts, entries as owner and backup, partitions, raft.
func TestMetricsCountWhatTheTestDid(t *testing.T) {
	var mu sync.Mutex
	regs := map[string]*prometheus.Registry{}
	members := startCluster(t, 3, func(c *Config) {
		reg := prometheus.NewRegistry()
		mu.Lock()
		regs[c.Name] = reg
		mu.Unlock()
		c.Metrics = reg
		c.Maps = map[string]dmap.MapConfig{"wb": {Store: memstore.New(), Persistence: mapstore.Config{WriteDelay: time.Hour}}}
		if c.Name == "m0" {
			c.Console.Addr = "127.0.0.1:0"
		}
	})
	var m0, m1 *Member
	for _, m := range members {
		switch m.cfg.Name {
		case "m0":
			m0 = m
		case "m1":
			m1 = m
		}
	}
	mp, err := GetMap[string, string](m0, "metered")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const puts, gets, deletes = 300, 200, 50
	for i := range puts {
		if err := mp.Put(ctx, fmt.Sprint("k", i), "value"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range gets {
		if _, err := mp.Get(ctx, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range deletes {
		if _, err := mp.Delete(ctx, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mp.Get(ctx, "absent"); err == nil {
		t.Fatal("Get of an absent key succeeded")
	}

	// A local listener that blocks: its queue (1 event) fills and the rest are missed.
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	defer close(release)
	h, err := mp.AddLocalEntryListener(ctx, func(dmap.EntryEvent[string, string]) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}, dmap.ListenerOptions[string]{QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	for i := range puts {
		if err := mp.Put(ctx, fmt.Sprint("k", i), "again"); err != nil {
			t.Fatal(err)
		}
	}
	select { // the listener holds its first event: its counts stay put from here on
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the listener got no event")
	}
	// Write-behind entries that wait an hour: all dirty.
	wb, err := GetMap[string, string](m0, "wb")
	if err != nil {
		t.Fatal(err)
	}
	const dirty = 40
	for i := range dirty {
		if err := wb.Put(ctx, fmt.Sprint("w", i), "v"); err != nil {
			t.Fatal(err)
		}
	}

	// A topic published to through m0 (a subscriber on m1) and a queue of 4 items.
	events, err := topic.New[string](m1.Topics(), "events")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := events.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := topic.New[string](m0.Topics(), "events")
	if err != nil {
		t.Fatal(err)
	}
	const published, items = 5, 4
	for i := range published {
		if _, err := pub.Publish(ctx, fmt.Sprint("e", i)); err != nil {
			t.Fatal(err)
		}
	}
	for range published { // delivered to m1's subscriber before the scrape
		select {
		case <-sub.Messages():
		case <-time.After(30 * time.Second):
			t.Fatal("the subscriber got no message")
		}
	}
	jobs, err := queue.New[string](m0.Queues(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	for i := range items {
		if err := jobs.Offer(ctx, fmt.Sprint("j", i)); err != nil {
			t.Fatal(err)
		}
	}

	fams := scrapeConsole(t, m0)
	ls := h.Stats()
	lm := map[string]string{"member": "m0", "map": "metered"}
	if ls.Missed == 0 {
		t.Fatalf("the blocked listener missed nothing: %+v", ls)
	}
	if got := value(fams, "gridmap_map_listener_missed_events_total", lm); got != float64(ls.Missed) {
		t.Errorf("listener missed %v, the listener's own count %d", got, ls.Missed)
	}
	if got := value(fams, "gridmap_map_listener_queued_events", lm); got != float64(ls.Queued) {
		t.Errorf("listener queued %v, the listener's own count %d", got, ls.Queued)
	}
	if got := value(fams, "gridmap_map_listeners", lm); got != 1 {
		t.Errorf("listeners %v, want 1", got)
	}
	op := func(kind string) map[string]string {
		return map[string]string{"member": "m0", "map": "metered", "op": kind}
	}
	for kind, want := range map[string]float64{"put": 2 * puts, "get": gets + 1, "delete": deletes, "contains": 0} {
		if got := value(fams, "gridmap_map_operations_total", op(kind)); got != want {
			t.Errorf("gridmap_map_operations_total{op=%q} = %v, want %v", kind, got, want)
		}
	}
	if got := value(fams, "gridmap_map_operation_errors_total", op("get")); got != 0 {
		t.Errorf("get errors = %v, want 0 (a miss is an answer, not a failure)", got)
	}
	hist, ok := series(fams, "gridmap_map_operation_latency_seconds", op("put"))
	if !ok || hist.Histogram == nil {
		t.Fatal("no put latency histogram")
	}
	if n := hist.Histogram.GetSampleCount(); n == 0 || n > 2*puts/16 || hist.Histogram.GetSampleSum() <= 0 {
		t.Errorf("put latency: %d samples (sum %v), want 1..%d", n, hist.Histogram.GetSampleSum(), 2*puts/16)
	}

	// Every member's own figures, through the registries the test passed in.
	var owned, backups, partsOwned, partsBacked, leaders, dirtyEntries, storeCalls float64
	var topicPublished, topicReceived, topicSubs, queueOwned, queueBackup float64
	for name, reg := range regs {
		f := gather(t, reg)
		topicPublished += value(f, "gridmap_topic_published_total", map[string]string{"topic": "events"})
		topicReceived += value(f, "gridmap_topic_received_total", map[string]string{"topic": "events"})
		topicSubs += value(f, "gridmap_topic_subscribers", map[string]string{"topic": "events"})
		queueOwned += value(f, "gridmap_queue_size", map[string]string{"queue": "jobs", "role": "owner"})
		queueBackup += value(f, "gridmap_queue_size", map[string]string{"queue": "jobs", "role": "backup"})
		for _, o := range []string{"returned", "lost"} {
			if _, ok := series(f, "gridmap_queue_giveback_items_total", map[string]string{"outcome": o}); !ok {
				t.Errorf("%s: no queue give-back series of outcome %s", name, o)
			}
		}
		if _, ok := series(f, "gridmap_queue_giveback_held_items", nil); !ok {
			t.Errorf("%s: no queue give-back held series", name)
		}
		wbl := map[string]string{"member": name, "map": "wb"}
		dirtyEntries += value(f, "gridmap_map_dirty_entries", wbl)
		storeCalls += value(f, "gridmap_map_store_calls_total", wbl)
		if value(f, "gridmap_map_dirty_entries", wbl) > 0 && value(f, "gridmap_map_write_behind_lag_seconds", wbl) <= 0 {
			t.Errorf("%s: dirty entries but no write-behind lag", name)
		}
		l := map[string]string{"member": name, "map": "metered"}
		owned += value(f, "gridmap_map_entries", with(l, "role", "owner"))
		backups += value(f, "gridmap_map_entries", with(l, "role", "backup"))
		if b := value(f, "gridmap_map_bytes", with(l, "role", "owner")); b <= 0 && value(f, "gridmap_map_entries", with(l, "role", "owner")) > 0 {
			t.Errorf("%s: entries but no bytes", name)
		}
		partsOwned += value(f, "gridmap_partitions", map[string]string{"role": "owner"})
		partsBacked += value(f, "gridmap_partitions", map[string]string{"role": "backup"})
		leaders += value(f, "gridmap_raft_leader", nil)
		if got := value(f, "gridmap_members", map[string]string{"state": "alive"}); got != 3 {
			t.Errorf("%s: %v members alive, want 3", name, got)
		}
		if value(f, "gridmap_transport_bytes_total", map[string]string{"direction": "out"}) == 0 ||
			value(f, "gridmap_transport_frames_received_total", nil) == 0 {
			t.Errorf("%s: no member traffic counted", name)
		}
		if value(f, "gridmap_raft_term", nil) < 1 {
			t.Errorf("%s: no raft term", name)
		}
	}
	if owned != puts || backups != puts { // the deleted keys were put again
		t.Errorf("entries: %v owned and %v backups over the members, want %d each", owned, backups, puts)
	}
	if dirtyEntries != dirty || storeCalls != 0 {
		t.Errorf("write-behind: %v dirty entries and %v store calls over the members, want %d and 0", dirtyEntries, storeCalls, dirty)
	}
	if topicPublished != published || topicReceived != published || topicSubs != 1 {
		t.Errorf("topic events: %v published, %v received, %v subscribers over the members; want %d, %d, 1", topicPublished, topicReceived, topicSubs, published, published)
	}
	if queueOwned != items || queueBackup != items {
		t.Errorf("queue jobs: %v items owned, %v backed up over the members; want %d each", queueOwned, queueBackup, items)
	}
	if partsOwned != 71 || partsBacked != 71 || leaders != 1 {
		t.Errorf("partitions %v owned, %v backed up, %v leaders: want 71, 71, 1", partsOwned, partsBacked, leaders)
	}

	// A member that stops takes its collector off the registry it was given.
	members[2].kill()
	if f := gather(t, regs[members[2].cfg.Name]); len(f) != 0 {
		t.Errorf("a stopped member still exports %d families", len(f))
	}
}

func with(l map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range l {
		out[a] = b
	}
	return out
}
