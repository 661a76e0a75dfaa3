package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	es8 "github.com/elastic/go-elasticsearch/v8"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/examples/socorro/collector"
	"github.com/gridmap/gridmap/examples/socorro/generator"
	"github.com/gridmap/gridmap/examples/socorro/gridstore"
	"github.com/gridmap/gridmap/examples/socorro/processor"
	"github.com/gridmap/gridmap/mapstore/elasticsearch"
	"github.com/gridmap/gridmap/mapstore/hbase"
)

// The store tests run against the real servers .ci/run starts: Elasticsearch at GRIDMAP_ES_URL
// and HBase at GRIDMAP_HBASE_ADDR. Without them they skip (CI=true: they fail).
//
// The outage is a network cut between the nodes and the server, not a stopped server: the
// servers are shared with the adapters' own tests, which run at the same time in other test
// processes (HBase's fixed ports allow only one), and stopping them would fail those. Every
// connection of the nodes' store clients goes through a netSwitch; cutting it closes them and
// refuses new ones, which is what the nodes see of a server that went down.

// needServer returns the value of env, or skips (fails with CI=true) when it is not set or the
// server does not answer check.
func needServer(t *testing.T, env string, check func(v string) error) string {
	t.Helper()
	v := os.Getenv(env)
	miss := func(why string) {
		msg := why + " (.ci/run starts the servers: see .ci/elasticsearch.sh and .ci/hbase.sh)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true: a missing server is a failure")
		}
		t.Skip(msg)
	}
	if v == "" {
		miss(env + " is not set")
	}
	if err := check(v); err != nil {
		miss(fmt.Sprintf("%s=%s does not answer: %v", env, v, err))
	}
	return v
}

// netSwitch dials TCP connections and can cut them all and refuse new ones until restored.
type netSwitch struct {
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newNetSwitch() *netSwitch { return &netSwitch{conns: map[net.Conn]struct{}{}} }

func (s *netSwitch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	refused := &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return nil, refused
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		c.Close()
		return nil, refused
	}
	tc := &switchedConn{Conn: c, s: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// cut closes every connection and refuses new ones.
func (s *netSwitch) cut() {
	s.mu.Lock()
	s.down = true
	conns := s.conns
	s.conns = map[net.Conn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		c.(*switchedConn).Conn.Close()
	}
}

func (s *netSwitch) restore() {
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
}

type switchedConn struct {
	net.Conn
	s *netSwitch
}

func (c *switchedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// submitReports posts n reports built from a real dump, round-robin over nodes, and returns the
// answered crash IDs.
func submitReports(t *testing.T, nodes []*Node, n int, product string) []string {
	t.Helper()
	dump, err := os.ReadFile("../minidump/testdata/linux-mini.dmp")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		ann := map[string]string{"ProductName": product, "Version": "140.0", "ReleaseChannel": "release", "BuildID": "20260101000000"}
		ct, body, err := generator.Encode(generator.Report{Annotations: ann, Dump: dump}, i%2 == 0, false)
		if err != nil {
			t.Fatal(err)
		}
		status, answer := post(t, nodes[i%len(nodes)].URL(), ct, body, false)
		id, ok := strings.CutPrefix(answer, "CrashID=bp-")
		if status != http.StatusOK || !ok {
			t.Fatalf("submit %d: %d %q", i, status, answer)
		}
		ids = append(ids, id)
	}
	return ids
}

// waitProcessed waits until every crash of ids is processed and no node has a backlog.
func waitProcessed(t *testing.T, nodes []*Node, ids []string) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, 2*time.Minute, fmt.Sprintf("the %d crashes are processed", len(ids)), func() bool {
		for _, id := range ids {
			if ok, err := nodes[0].processed.ContainsKey(ctx, id); err != nil || !ok {
				return false
			}
		}
		for _, nd := range nodes {
			if nd.backlog() != 0 {
				return false
			}
		}
		return true
	})
}

// TestElasticsearchStore: processed crashes written behind to Elasticsearch, one index a week,
// searchable (the pages' lists come from a search and a terms aggregation); while the nodes
// cannot reach Elasticsearch they keep collecting and processing (the entries stay dirty in
// the grid), and once it is back every crash reaches it.
func TestElasticsearchStore(t *testing.T) {
	url := needServer(t, "GRIDMAP_ES_URL", func(v string) error {
		res, err := (&http.Client{Timeout: 10 * time.Second}).Get(v + "/_cluster/health")
		if err == nil {
			res.Body.Close()
		}
		return err
	})
	sw := newNetSwitch()
	// A fresh index pattern per run, so that counts see this run's crashes only.
	// A fresh index pattern and template per run, so that counts see this run's crashes only;
	// its name matches no other template's pattern (Elasticsearch refuses overlapping patterns
	// of one priority: "socorro*" of a demo, "gm-test-*" of the adapter's tests).
	prefix := fmt.Sprintf("gm-socorro-test-%d-", time.Now().UnixNano())
	index, template := prefix+"%Y%W", "gridmap-"+prefix+"t"
	// Registered before the nodes start, so it runs after they closed (their write-behind done).
	t.Cleanup(func() { deleteIndices(t, url, prefix, template) })
	var stores []*elasticsearch.Store
	nodes := startClusterWith(t, 3, func(i int, c *Config) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = sw.dial
		client, err := es8.NewClient(es8.Config{Addresses: []string{url}, Transport: tr, DisableRetry: true})
		if err != nil {
			t.Fatal(err)
		}
		c.Elasticsearch = &elasticsearch.Config{Client: client, Index: index, Template: template, RequestTimeout: 5 * time.Second,
			Settings: []byte(`{"number_of_shards":1,"number_of_replicas":0,"refresh_interval":"200ms"}`)}
	})
	for _, nd := range nodes {
		stores = append(stores, nd.es)
	}
	es := stores[0]
	ctx := context.Background()
	product := "Firefox"

	start := time.Now()
	step := func(what string) { t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), what) }
	step("3 nodes started")
	ids := submitReports(t, nodes, 12, product)
	waitProcessed(t, nodes, ids)
	step("12 crashes processed")
	waitInES(t, es, ids)
	step("12 crashes in Elasticsearch")
	checkESDocs(t, es, nodes, ids)
	waitFor(t, time.Minute, "a node's index page shows the crashes from Elasticsearch", func() bool {
		_, page := get(t, nodes[1].URL()+"/")
		return strings.Contains(page, "from elasticsearch") && strings.Contains(page, fmt.Sprintf("%d crashes processed in the last hour", len(ids)))
	})

	step("pages from Elasticsearch")
	// The outage: the nodes keep collecting and processing.
	sw.cut()
	restored := false
	defer func() {
		if !restored {
			sw.restore()
		}
	}()
	down := submitReports(t, nodes, 12, product)
	waitProcessed(t, nodes, down)
	if _, _, err := es.Load(ctx, []byte(down[0])); err == nil {
		t.Fatal("Elasticsearch answered through the cut network")
	}
	waitFor(t, time.Minute, "the nodes report the processed crashes as not yet stored", func() bool {
		for _, nd := range nodes {
			if ps := nd.member.Maps().PersistenceStats(ProcessedMap); ps.DirtyEntries > 0 && ps.StoreErrors > 0 {
				return true
			}
		}
		return false
	})
	// The pages still work, from the grid.
	_, page := get(t, nodes[2].URL()+"/")
	if !strings.Contains(page, "from grid") || !strings.Contains(page, "Elasticsearch did not answer") {
		t.Errorf("index page during the outage does not fall back to the grid:\n%s", page)
	}
	for _, id := range down[:2] {
		if status, page := get(t, nodes[0].URL()+"/report/bp-"+id); status != http.StatusOK || !strings.Contains(page, `id="status">processed`) {
			t.Errorf("report %s during the outage: %d", id, status)
		}
	}

	step("12 more crashes processed during the outage")
	sw.restore()
	restored = true
	all := append(append([]string(nil), ids...), down...)
	waitInES(t, es, all)
	step("all 24 crashes in Elasticsearch after the outage")
	checkESDocs(t, es, nodes, all)
}

// waitInES waits until Elasticsearch holds a processed crash for every ID (read back through
// the adapter's Load, _mget: no refresh needed).
func waitInES(t *testing.T, es *elasticsearch.Store, ids []string) {
	t.Helper()
	ctx := context.Background()
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		keys[i] = []byte(id)
	}
	waitFor(t, 2*time.Minute, fmt.Sprintf("Elasticsearch holds the %d processed crashes", len(ids)), func() bool {
		n := 0
		err := es.LoadAll(ctx, keys, func(k, v []byte) error { n++; return nil })
		return err == nil && n == len(ids)
	})
}

// checkESDocs compares the stored documents with the grid's processed crashes, checks they sit
// in the week's index, and that the terms aggregation counts every crash.
func checkESDocs(t *testing.T, es *elasticsearch.Store, nodes []*Node, ids []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		v, ok, err := es.Load(ctx, []byte(id))
		if err != nil || !ok {
			t.Fatalf("load %s: %v %v", id, ok, err)
		}
		got, err := processedCodec.Decode(v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := nodes[0].processed.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != id || got.Signature != want.Signature || got.Reason != want.Reason || !got.Processed.Equal(want.Processed) ||
			got.DumpChecksums[processor.MainDump] != want.DumpChecksums[processor.MainDump] || got.MinidumpStatus != want.MinidumpStatus {
			t.Errorf("%s in Elasticsearch:\n%+v\nin the grid:\n%+v", id, got, want)
		}
		idx, err := es.IndexOf([]byte(id))
		if err != nil {
			t.Fatal(err)
		}
		day, _ := collector.CrashIDDate(id)
		y, w := day.Year(), mondayWeekOfYear(day)
		if !strings.HasSuffix(idx, fmt.Sprintf("%04d%02d", y, w)) {
			t.Errorf("%s is in index %s, want the week %04d%02d", id, idx, y, w)
		}
	}
	if err := es.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	buckets, total, err := es.Count(ctx, elasticsearch.Query{Match: map[string]any{"product": "Firefox"}}, "signature")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, b := range buckets {
		sum += b.Count
	}
	if total != int64(len(ids)) || sum != total {
		t.Errorf("Count: %d crashes in %v, want %d", total, buckets, len(ids))
	}
}

// mondayWeekOfYear is strftime's %W: weeks start on Monday, days before the first Monday are
// week 0.
func mondayWeekOfYear(t time.Time) int {
	return (t.YearDay() + 6 - (int(t.Weekday())+6)%7) / 7
}

// deleteIndices removes the test's indices (named prefix...) and their template.
func deleteIndices(t *testing.T, url, prefix, template string) {
	for _, path := range []string{"/" + prefix + "*", "/_index_template/" + template} {
		req, _ := http.NewRequest(http.MethodDelete, url+path, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNotFound { // 404: never written
				t.Errorf("DELETE %s: HTTP %d", path, res.StatusCode)
			}
			res.Body.Close()
		} else {
			t.Logf("delete %s: %v", path, err)
		}
	}
}

// TestHBaseStore: raw crashes (annotations and dumps) written behind to HBase under Socorro's
// row keys; while the nodes cannot reach HBase they keep collecting and processing, and once
// it is back every raw crash reaches it.
func TestHBaseStore(t *testing.T) {
	addr := needServer(t, "GRIDMAP_HBASE_ADDR", func(v string) error {
		c, err := net.DialTimeout("tcp", v, 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	sw := newNetSwitch()
	table := fmt.Sprintf("socorro_test_%d", time.Now().UnixNano())
	client, err := hbase.NewClient(hbase.Config{Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the nodes start, so it runs after they closed (their write-behind done).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := client.DeleteTable(ctx, table); err != nil {
			t.Logf("delete table %s: %v", table, err)
		}
		client.Close()
	})
	// mapstore/hbase's restart test, in another test process, may have the shared server
	// stopped for a while: create the table once it serves (the nodes then find it).
	waitFor(t, 5*time.Minute, "HBase creates the table", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := client.EnsureTableWith(ctx, table, hbase.TableOptions{SplitKeys: hbase.SocorroKeys{}.SplitKeys(), MOBThreshold: hbaseMOBThreshold}, "raw_data")
		if err != nil {
			t.Logf("create table %s: %v", table, err)
		}
		return err == nil
	})
	start := time.Now()
	nodes := startClusterWith(t, 3, func(i int, c *Config) {
		c.HBase = &hbase.Config{Addrs: []string{addr}, Dial: sw.dial, OpTimeout: 10 * time.Second}
		c.HBaseTable = table
	})
	t.Logf("3 nodes started, table %s created, in %v", table, time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	store, err := hbase.NewStore(ctx, client, hbase.StoreConfig{Table: table, Family: "raw_data", Keys: hbase.SocorroKeys{}})
	if err != nil {
		t.Fatal(err)
	}

	ids := submitReports(t, nodes, 12, "Firefox")
	waitProcessed(t, nodes, ids)
	waitInHBase(t, store, nodes, ids)

	sw.cut()
	restored := false
	defer func() {
		if !restored {
			sw.restore()
		}
	}()
	down := submitReports(t, nodes, 12, "Firefox")
	waitProcessed(t, nodes, down)
	waitFor(t, time.Minute, "the nodes report raw crashes as not yet stored", func() bool {
		for _, nd := range nodes {
			if ps := nd.member.Maps().PersistenceStats(gridstore.ReportsMap); ps.DirtyEntries > 0 && ps.StoreErrors > 0 {
				return true
			}
		}
		return false
	})
	for _, id := range down[:2] {
		status, dump := get(t, nodes[1].URL()+"/report/bp-"+id+"/dump/"+processor.MainDump)
		if status != http.StatusOK || len(dump) == 0 {
			t.Errorf("dump of %s during the outage: %d", id, status)
		}
	}
	sw.restore()
	restored = true
	waitInHBase(t, store, nodes, append(append([]string(nil), ids...), down...))
}

// waitInHBase waits until HBase holds every raw crash of ids as the grid holds it.
func waitInHBase(t *testing.T, store *hbase.Store, nodes []*Node, ids []string) {
	t.Helper()
	ctx := context.Background()
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		keys[i] = []byte(id)
	}
	got := map[string][]byte{}
	// Minutes: mapstore/hbase's restart test may stop the shared server meanwhile.
	waitFor(t, 5*time.Minute, fmt.Sprintf("HBase holds the %d raw crashes", len(ids)), func() bool {
		clear(got)
		err := store.LoadAll(ctx, keys, func(k, v []byte) error { got[string(k)] = v; return nil })
		return err == nil && len(got) == len(ids)
	})
	codec := dmap.DefaultCodec[*collector.Crash]()
	for _, id := range ids {
		c, err := codec.Decode(got[id])
		if err != nil {
			t.Fatalf("raw crash %s in HBase: %v", id, err)
		}
		want, err := nodes[2].reports.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != id || string(c.Dumps[processor.MainDump]) != string(want.Dumps[processor.MainDump]) || c.Annotations["ProductName"] != "Firefox" {
			t.Errorf("raw crash %s in HBase differs from the grid's", id)
		}
	}
}
