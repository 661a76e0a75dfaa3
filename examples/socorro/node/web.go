package node

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/examples/socorro/collector"
	"github.com/gridmap/gridmap/examples/socorro/gridstore"
	"github.com/gridmap/gridmap/examples/socorro/processor"
)

//go:embed web
var webFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": func(t time.Time) string { return time.Since(t).Truncate(time.Second).String() },
}).ParseFS(webFS, "web/*.html"))

// handler serves /submit, the pages and the static files.
func (n *Node) handler() (http.Handler, error) {
	submit, err := collector.NewHandler(collector.Config{Store: countingStore{n}, MaxInFlightBytes: n.cfg.SubmitBudget, Logger: n.log})
	if err != nil {
		return nil, err
	}
	n.submit = submit
	static, err := fs.Sub(webFS, "web/static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /submit", submit)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", n.serveIndex)
	mux.HandleFunc("GET /api/stats", n.serveStats)
	mux.HandleFunc("POST /command", n.serveCommand)
	mux.HandleFunc("GET /report/{id}", n.serveReport)
	mux.HandleFunc("GET /report/{id}/dump/{name}", n.serveDump)
	mux.HandleFunc("GET /debug/heap", serveHeapProfile)
	return mux, nil
}

// countingStore counts the crashes this node collected.
type countingStore struct{ n *Node }

func (s countingStore) Save(ctx context.Context, c *collector.Crash) error {
	if err := s.n.store.Save(ctx, c); err != nil {
		return err
	}
	s.n.enqueue(ctx, c.ID)
	s.n.collected.add(time.Now())
	return nil
}

// Rates are a node's figures on the index page.
type Rates struct {
	CollectedPerMinute, CollectedTotal uint64
	ProcessedPerMinute, ProcessedTotal uint64
	Backlog                            int
	// Refused counts the submissions answered 503 (the in-flight budget was full) since start;
	// InFlightBytes is the report bytes /submit holds now.
	Refused       uint64
	InFlightBytes int64
	// Unstored counts this member's entries (backups included) written but not yet in their
	// store: it grows while a store is unreachable and drains when it is back.
	Unstored int
}

// Rates returns the node's collect and process rates and its backlog.
func (n *Node) Rates() Rates {
	now := time.Now()
	var r Rates
	r.CollectedPerMinute, r.CollectedTotal = n.collected.perMinute(now)
	r.ProcessedPerMinute, r.ProcessedTotal = n.processedRate.perMinute(now)
	r.Backlog = n.backlog()
	r.Refused, r.InFlightBytes = n.submit.Refused(), n.submit.InFlightBytes()
	for _, m := range []string{gridstore.ReportsMap, gridstore.ProcessMap, ProcessedMap} {
		r.Unstored += n.member.Maps().PersistenceStats(m).DirtyEntries
	}
	return r
}

type indexPage struct {
	Name       string
	Members    []string
	Rates      Rates
	Cluster    ClusterView
	ClusterErr string
	// Steering and GeneratorRate: the command topic's setting and this node's generator rate.
	Steering      Steering
	GeneratorRate float64
}

// Sizes of the index page's lists.
const (
	pageRecent = 50
	pageTop    = 20
)

func (n *Node) serveIndex(w http.ResponseWriter, r *http.Request) {
	var members []string
	for _, m := range n.member.Cluster().Members() {
		members = append(members, string(m.ID))
	}
	sort.Strings(members)
	p := indexPage{Name: n.cfg.Name, Members: members, Rates: n.Rates(), Steering: n.Steering(), GeneratorRate: n.GeneratorRate()}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var err error
	if p.Cluster, err = n.Cluster(ctx, pageRecent, pageTop); err != nil {
		p.ClusterErr = err.Error()
	}
	render(w, http.StatusOK, "index.html", p)
}

type reportPage struct {
	Name        string
	ID          string
	Pending     bool
	Raw         *collector.Crash // nil once the raw crash is gone (Config.KeepRaw)
	Kept        time.Duration    // Config.KeepRaw
	Processed   *processor.Crash
	Annotations []kv
	Dumps       []dumpInfo
}

type kv struct{ Key, Value string }

type dumpInfo struct {
	Name     string
	Size     int
	Checksum string
}

func (n *Node) serveReport(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.PathValue("id"), "bp-")
	if !collector.ValidCrashID(id) {
		http.Error(w, "not a crash ID", http.StatusNotFound)
		return
	}
	ctx := r.Context()
	raw, err := n.reports.Get(ctx, id)
	if err != nil && !errors.Is(err, dmap.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	p := reportPage{Name: n.cfg.Name, ID: id, Raw: raw, Kept: n.cfg.KeepRaw}
	p.Processed, err = n.processed.Get(ctx, id)
	switch {
	case errors.Is(err, dmap.ErrNotFound) && raw == nil:
		http.Error(w, "no crash "+id, http.StatusNotFound)
		return
	case errors.Is(err, dmap.ErrNotFound):
		p.Pending = true
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if raw == nil { // kept for KeepRaw, processed crash kept longer
		render(w, http.StatusOK, "report.html", p)
		return
	}
	for k, v := range raw.Annotations {
		p.Annotations = append(p.Annotations, kv{k, v})
	}
	sort.Slice(p.Annotations, func(i, j int) bool { return p.Annotations[i].Key < p.Annotations[j].Key })
	for name, d := range raw.Dumps {
		p.Dumps = append(p.Dumps, dumpInfo{name, len(d), raw.Metadata.DumpChecksums[name]})
	}
	sort.Slice(p.Dumps, func(i, j int) bool { return p.Dumps[i].Name < p.Dumps[j].Name })
	render(w, http.StatusOK, "report.html", p)
}

func (n *Node) serveDump(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.PathValue("id"), "bp-")
	if !collector.ValidCrashID(id) {
		http.Error(w, "not a crash ID", http.StatusNotFound)
		return
	}
	raw, err := n.reports.Get(r.Context(), id)
	if errors.Is(err, dmap.ErrNotFound) {
		http.Error(w, "no crash "+id, http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	name := r.PathValue("name")
	d, ok := raw.Dumps[name]
	if !ok {
		http.Error(w, "no dump "+name, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id+"-"+name+`.dmp"`)
	_, _ = w.Write(d)
}

// Stats is what GET /api/stats answers: the node's rates and its process's memory, for load
// runs and monitors.
type Stats struct {
	Name  string
	Rates Rates
	// Steering is the command topic's setting as this node knows it; GeneratorRate the rate its
	// generator runs at, reports a second.
	Steering      Steering
	GeneratorRate float64
	// HeapInuse and Sys are the Go runtime's figures (runtime.MemStats), bytes. HeapInuse
	// counts garbage not yet collected; LiveHeap is the heap the last collection found
	// reachable (runtime/metrics "/gc/heap/live:bytes"), what the process needs to hold.
	HeapInuse, Sys, LiveHeap uint64
	Goroutines               int
	// SchedLatencyP99 and SchedLatencyMax are how long goroutines waited to run once runnable,
	// over the window since the previous /api/stats read (schedstats.go): CPU starvation.
	SchedLatencyP99, SchedLatencyMax time.Duration
}

func (n *Node) serveStats(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.Header().Set("Content-Type", "application/json")
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	p99, maxWait := n.sched.window()
	_ = json.NewEncoder(w).Encode(Stats{Name: n.cfg.Name, Rates: n.Rates(), Steering: n.Steering(), GeneratorRate: n.GeneratorRate(), HeapInuse: ms.HeapInuse, Sys: ms.Sys, LiveHeap: live[0].Value.Uint64(), Goroutines: runtime.NumGoroutine(),
		SchedLatencyP99: p99, SchedLatencyMax: maxWait})
}

// serveHeapProfile answers the process's heap profile (go tool pprof reads it), after a
// collection when asked with ?gc=1, so that inuse figures are the live heap: how a node's memory
// divides between the entries under its budget and everything else (docs/operations.md).
func serveHeapProfile(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("gc") == "1" {
		runtime.GC()
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.Lookup("heap").WriteTo(w, 0); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}
