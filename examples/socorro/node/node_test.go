package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/examples/socorro/collector"
	"github.com/gridmap/gridmap/examples/socorro/generator"
	"github.com/gridmap/gridmap/examples/socorro/processor"
)

// startCluster starts n nodes in this process, each with its own data folder, and closes them
// at the end of the test.
func startCluster(t *testing.T, n int) []*Node {
	t.Helper()
	return startClusterWith(t, n, nil)
}

// startClusterWith is startCluster with each node's Config changed by edit (if not nil).
func startClusterWith(t *testing.T, n int, edit func(i int, c *Config)) []*Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var nodes []*Node
	for i := range n {
		mc := gridmap.Config{Timings: gridmap.LocalTimings()}
		if i > 0 {
			mc.Seeds = []string{nodes[0].Member().GossipAddr()}
		}
		cfg := Config{
			Name:       "n" + string(rune('0'+i)),
			Member:     mc,
			DataDir:    filepath.Join(t.TempDir(), "data"),
			WriteDelay: 100 * time.Millisecond,
			// Long enough that a crash waits for the listener, not the sweeper, in a test
			// that does not ask for sweeps.
			SweepEvery:   time.Hour,
			SweepAge:     time.Hour,
			PublishEvery: 100 * time.Millisecond,
		}
		if edit != nil {
			edit(i, &cfg)
		}
		nd, err := Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, nd := range nodes {
			if err := nd.Close(ctx); err != nil {
				t.Errorf("close %s: %v", nd.cfg.Name, err)
			}
		}
	})
	waitFor(t, time.Minute, "every node sees the whole cluster", func() bool {
		for _, nd := range nodes {
			if len(nd.Member().Cluster().Members()) != n {
				return false
			}
		}
		return true
	})
	var state string
	defer func() {
		if t.Failed() {
			t.Logf("partitions: %s", state)
		}
	}()
	waitFor(t, time.Minute, "the partitions are spread over every node and the cluster is safe", func() bool {
		c := nodes[0].Member().Cluster()
		owners := map[string]bool{}
		migrating, lost := 0, 0
		for _, p := range c.Partitions() {
			owners[string(p.Owner)] = true
			migrating += len(p.Migrating)
			if p.Lost {
				lost++
			}
		}
		state = fmt.Sprintf("%d owners, %d copies in flight, %d lost, safe %v", len(owners), migrating, lost, c.Safe())
		return len(owners) == n && c.Safe()
	})
	return nodes
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func post(t *testing.T, url, contentType string, body []byte, gz bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/submit", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type submitted struct {
	annotations map[string]string
	dump        []byte
}

// Three nodes: every real dump posted plain and gzipped, with fields and with extra, to every
// node; each accepted crash is processed exactly once into the fields the processor gives it;
// malformed posts get their reason; the pages show the crashes.
func TestEndToEnd(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := context.Background()

	files, err := filepath.Glob("../minidump/testdata/*.dmp")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test dumps: %v", err)
	}
	want := map[string]submitted{}
	k := 0
	for _, f := range files {
		dump, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, asJSON := range []bool{false, true} {
			for _, gz := range []bool{false, true} {
				ann := map[string]string{"ProductName": "Firefox", "Version": "140.0", "ReleaseChannel": "release", "BuildID": "20260101000000", "Dump": filepath.Base(f)}
				ct, body, err := generator.Encode(generator.Report{Annotations: ann, Dump: dump}, asJSON, gz)
				if err != nil {
					t.Fatal(err)
				}
				nd := nodes[k%len(nodes)]
				k++
				status, answer := post(t, nd.URL(), ct, body, gz)
				id, ok := strings.CutPrefix(answer, "CrashID=bp-")
				if status != http.StatusOK || !ok {
					t.Fatalf("%s json=%v gzip=%v: %d %q", f, asJSON, gz, status, answer)
				}
				want[id] = submitted{ann, dump}
			}
		}
	}

	// Reports as the generator makes them: megabytes of dump, which the listener's event may
	// reach before the report is readable.
	r := mrand.New(mrand.NewPCG(1, 2))
	base, err := os.ReadFile("../minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		rep, err := generator.NewReport(r, base, 1024, int64(1+i)<<20)
		if err != nil {
			t.Fatal(err)
		}
		rep.Annotations["Dump"] = "test.dmp"
		ct, body, err := generator.Encode(rep, i%2 == 0, i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		status, answer := post(t, nodes[i].URL(), ct, body, i%2 == 1)
		id, ok := strings.CutPrefix(answer, "CrashID=bp-")
		if status != http.StatusOK || !ok {
			t.Fatalf("generated report: %d %q", status, answer)
		}
		want[id] = submitted{rep.Annotations, rep.Dump}
	}

	// Malformed posts: their reason, and nothing stored.
	for _, c := range []struct {
		ct, body, reason string
		gz               bool
	}{
		{"text/plain", "x", "wrong_content_type", false},
		{"multipart/form-data", "x", "no_boundary", false},
		{"multipart/form-data; boundary=b", "not gzip", "bad_gzip", true},
		{"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"extra\"\r\nContent-Type: application/json\r\n\r\n{bad\r\n--b--\r\n", "invalid_json", false},
		{"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"a.dmp\"\r\nContent-Type: application/octet-stream\r\n\r\nMDMP\r\n--b--\r\n", "no_annotations", false},
	} {
		status, answer := post(t, nodes[0].URL(), c.ct, []byte(c.body), c.gz)
		if status != http.StatusBadRequest || answer != "Discarded=malformed_"+c.reason {
			t.Errorf("post %q: %d %q, want 400 Discarded=malformed_%s", c.body, status, answer, c.reason)
		}
	}

	processed, err := gridmap.GetMap[string, *processor.Crash](nodes[1].Member(), ProcessedMap)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "every crash is processed and no process entry is left", func() bool {
		for id := range want {
			if ok, err := processed.ContainsKey(ctx, id); err != nil || !ok {
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
	n, err := processed.Size(ctx)
	if err != nil || n != len(want) {
		t.Errorf("processedCrashes holds %d (%v), want %d", n, err, len(want))
	}
	var total uint64
	for _, nd := range nodes {
		total += nd.Rates().ProcessedTotal
	}
	if total != uint64(len(want)) {
		t.Errorf("nodes processed %d crashes, want each of %d once", total, len(want))
	}
	for id, s := range want {
		got, err := processed.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		exp := processor.Process(&processor.Raw{ID: id, Submitted: got.Submitted, Annotations: withUUID(s.annotations, id), Dumps: map[string][]byte{processor.MainDump: s.dump}}, nil, got.Processed)
		sum := sha256.Sum256(s.dump)
		if got.ID != id || got.Product != s.annotations["ProductName"] || got.Version != s.annotations["Version"] || got.BuildID != exp.BuildID ||
			got.Signature != exp.Signature || got.Reason != exp.Reason || got.OSName != exp.OSName || got.CPUArch != exp.CPUArch ||
			got.Module != exp.Module || got.ModuleOffset != exp.ModuleOffset || got.MinidumpStatus != exp.MinidumpStatus ||
			got.DumpChecksums[processor.MainDump] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s (%s): processed\n%+v\nwant\n%+v", id, s.annotations["Dump"], got, exp)
		}
		// invalid-parameter.dmp is a well-formed dump of an invalid-parameter crash (see
		// minidump/testdata/README.md); the other invalid-* dumps are corrupt.
		corrupt := s.annotations["Dump"] == "invalid-range.dmp" || s.annotations["Dump"] == "invalid-record-count.dmp"
		if corrupt != (got.MinidumpStatus != processor.StatusOK) {
			t.Errorf("%s: minidump status %s", s.annotations["Dump"], got.MinidumpStatus)
		}
	}

	// Pages: each crash on every node, the dump download, the index.
	for id, s := range want {
		status, page := get(t, nodes[2].URL()+"/report/bp-"+id)
		if status != http.StatusOK || !strings.Contains(page, `id="status">processed`) {
			t.Fatalf("report %s: %d\n%s", id, status, page)
		}
		status, dump := get(t, nodes[0].URL()+"/report/bp-"+id+"/dump/"+processor.MainDump)
		if status != http.StatusOK || dump != string(s.dump) {
			t.Errorf("dump of %s: %d, %d bytes, want %d", id, status, len(dump), len(s.dump))
		}
		break
	}
	// The index page of every node lists the whole cluster's crashes and counts them all in its
	// top signatures, though each node processed only some of them.
	var local []uint64
	for _, nd := range nodes {
		local = append(local, nd.Rates().ProcessedTotal)
	}
	if slices.Contains(local, uint64(len(want))) {
		t.Fatalf("one node processed every crash (%v): the test cannot tell a cluster view from a local one", local)
	}
	for _, nd := range nodes {
		var page string
		waitFor(t, time.Minute, nd.cfg.Name+"'s index lists every crash of the cluster", func() bool {
			var status int
			status, page = get(t, nd.URL()+"/")
			if status != http.StatusOK || !strings.Contains(page, "Top signatures") ||
				!strings.Contains(page, fmt.Sprintf("%d crashes processed in the last hour", len(want))) {
				return false
			}
			for id := range want {
				if !strings.Contains(page, id) {
					return false
				}
			}
			return true
		})
		if !strings.Contains(page, "from grid") {
			t.Errorf("%s's index does not say its lists come from the grid", nd.cfg.Name)
		}
	}
	if status, _ := get(t, nodes[0].URL()+"/report/bp-00000000-0000-0000-0000-000000260101"); status != http.StatusNotFound {
		t.Errorf("unknown crash: %d, want 404", status)
	}
}

func withUUID(a map[string]string, id string) map[string]string {
	m := map[string]string{"uuid": id}
	for k, v := range a {
		m[k] = v
	}
	return m
}

// A report without its process entry shows "pending"; once its process entry is written the
// listener processes it and the page shows it processed. A process entry whose event was missed
// is found by the sweeper.
func TestPendingThenProcessedAndSweep(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := context.Background()
	m := nodes[0].Member()
	reports, err := gridmap.GetMap[string, *collector.Crash](m, "crashReports")
	if err != nil {
		t.Fatal(err)
	}
	process, err := gridmap.GetMap[string, time.Time](m, "process")
	if err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile("../minidump/testdata/linux-mini.dmp")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	id, err := collector.NewCrashID(rand.Reader, now, collector.Accept)
	if err != nil {
		t.Fatal(err)
	}
	if err := reports.Put(ctx, id, &collector.Crash{ID: id, Submitted: now, Annotations: map[string]string{"ProductName": "Firefox", "uuid": id}, Dumps: map[string][]byte{processor.MainDump: dump}}); err != nil {
		t.Fatal(err)
	}
	status, page := get(t, nodes[1].URL()+"/report/bp-"+id)
	if status != http.StatusOK || !strings.Contains(page, `id="status">pending`) {
		t.Fatalf("before processing: %d\n%s", status, page)
	}
	if err := process.Put(ctx, id, now); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the report page shows the crash processed", func() bool {
		_, page := get(t, nodes[1].URL()+"/report/bp-"+id)
		return strings.Contains(page, `id="status">processed`) && strings.Contains(page, "SIGSEGV")
	})

	// Processing again (an event delivered twice, the sweeper racing the listener) keeps the
	// first processed crash and counts nothing.
	processed, err := gridmap.GetMap[string, *processor.Crash](m, ProcessedMap)
	if err != nil {
		t.Fatal(err)
	}
	first, err := processed.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var before uint64
	for _, nd := range nodes {
		before += nd.Rates().ProcessedTotal
		nd.processOne(ctx, id)
	}
	again, err := processed.Get(ctx, id)
	if err != nil || !again.Processed.Equal(first.Processed) || again.Signature != first.Signature {
		t.Errorf("processed twice: %+v %v, want %+v", again, err, first)
	}
	var after uint64
	for _, nd := range nodes {
		after += nd.Rates().ProcessedTotal
	}
	if after != before {
		t.Errorf("processed total went from %d to %d", before, after)
	}

	// A missed event: the listener is gone, the entry waits; the owner's sweep processes it.
	for _, nd := range nodes {
		nd.listener.Remove()
	}
	id2, err := collector.NewCrashID(rand.Reader, now, collector.Accept)
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].store.Save(ctx, &collector.Crash{ID: id2, Submitted: now.Add(-time.Hour), Annotations: map[string]string{"ProductName": "Firefox", "uuid": id2}, Dumps: map[string][]byte{processor.MainDump: dump}}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		nd.sweep(ctx, time.Now().Add(-time.Minute))
	}
	if ok, err := processed.ContainsKey(ctx, id2); err != nil || !ok {
		t.Errorf("swept crash processed: %v %v", ok, err)
	}
	if _, err := process.Get(ctx, id2); !errors.Is(err, dmap.ErrNotFound) {
		t.Errorf("process entry after sweep: %v, want not found", err)
	}
}
