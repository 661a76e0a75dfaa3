package elasticsearch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

// These tests put a scripted HTTP server in place of Elasticsearch to produce what a real one
// does only under duress: garbage, 429s, a port nobody listens on. Everything else is tested
// against the real server.

// fakeES answers the template request with 200 and every bulk request with bulk(ops), where ops
// are the (action, _id) pairs of the request.
type fakeES struct {
	mu    sync.Mutex
	bulks [][]string // the _ids of each bulk request
	bulk  func(n int, ids []string) (status int, body string)
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	if !strings.HasPrefix(r.URL.Path, "/_bulk") {
		_, _ = io.WriteString(w, `{"acknowledged":true}`)
		return
	}
	var ids []string
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var action map[string]struct {
			ID string `json:"_id"`
		}
		if json.Unmarshal(sc.Bytes(), &action) == nil {
			for _, a := range action {
				if a.ID != "" {
					ids = append(ids, a.ID)
				}
			}
		}
	}
	f.mu.Lock()
	f.bulks = append(f.bulks, ids)
	n := len(f.bulks)
	f.mu.Unlock()
	status, body := f.bulk(n, ids)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// items answers ids with the status statusOf(id) each.
func items(ids []string, statusOf func(id string) int) string {
	var b strings.Builder
	b.WriteString(`{"took":1,"errors":true,"items":[`)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		st := statusOf(id)
		fmt.Fprintf(&b, `{"index":{"_index":"x","_id":%q,"status":%d`, id, st)
		if st >= 300 {
			fmt.Fprintf(&b, `,"error":{"type":"test_exception","reason":"status %d"}`, st)
		}
		b.WriteString("}}")
	}
	b.WriteString("]}")
	return b.String()
}

func fakeStore(t *testing.T, f *fakeES, mod func(*Config)) *Store {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := Config{Addresses: []string{srv.URL}, Index: "fake", RetryInitial: time.Millisecond, RetryMax: 4 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func docs(n int) (keys, values [][]byte) {
	for i := range n {
		keys = append(keys, fmt.Appendf(nil, "k%d", i))
		values = append(values, fmt.Appendf(nil, `{"i":%d}`, i))
	}
	return keys, values
}

// A garbage answer is ErrBadResponse (retry later), never success.
func TestGarbageAnswers(t *testing.T) {
	for name, answer := range map[string]string{
		"not JSON":        `<html>gateway</html>`,
		"truncated":       `{"errors":false,"items":[{"index":{"_id":"k0","status":201}}`,
		"too few items":   `{"errors":false,"items":[{"index":{"_id":"k0","status":201}}]}`,
		"wrong ids":       `{"errors":false,"items":[{"index":{"_id":"k0","status":201}},{"index":{"_id":"zz","status":201}}]}`,
		"no errors field": `{"items":[{"index":{"_id":"k0","status":201}},{"index":{"_id":"k1","status":201}}]}`,
		"no status":       `{"errors":false,"items":[{"index":{"_id":"k0"}},{"index":{"_id":"k1"}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			s := fakeStore(t, &fakeES{bulk: func(int, []string) (int, string) { return 200, answer }}, nil)
			keys, values := docs(2)
			err := s.StoreAll(context.Background(), keys, values)
			if !errors.Is(err, ErrBadResponse) || errors.Is(err, mapstore.ErrRejected) {
				t.Fatalf("StoreAll with the answer %s: %v, want ErrBadResponse", answer, err)
			}
		})
	}
}

// Items refused with 429 or 503 are sent again, alone; items refused with a 400 are reported as
// rejected and not sent again; the rest is stored once.
func TestOnlyFailedItemsRetried(t *testing.T) {
	f := &fakeES{}
	f.bulk = func(n int, ids []string) (int, string) {
		return 200, items(ids, func(id string) int {
			switch {
			case id == "k3":
				return 400
			case (id == "k5" || id == "k7") && n == 1, id == "k7" && n == 2:
				if id == "k5" {
					return 503
				}
				return 429
			}
			return 201
		})
	}
	s := fakeStore(t, f, nil)
	keys, values := docs(10)
	err := s.StoreAll(context.Background(), keys, values)
	rej := mapstore.Rejected(err)
	if rej == nil || len(rej.Keys) != 1 || string(rej.Keys[0]) != "k3" || !errors.Is(err, mapstore.ErrRejected) {
		t.Fatalf("StoreAll: %v, want k3 rejected", err)
	}
	want := [][]string{{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"}, {"k5", "k7"}, {"k7"}}
	if got := fmt.Sprint(f.bulks); got != fmt.Sprint(want) {
		t.Fatalf("bulk requests %v, want %v", got, want)
	}
}

// A server that answers 429 to whole requests slows the Store down; once it accepts, the call
// succeeds. One that keeps refusing fails the call after BulkTries (retry later), never drops.
func TestThrottledRequests(t *testing.T) {
	f := &fakeES{}
	f.bulk = func(n int, ids []string) (int, string) {
		if n <= 3 {
			return 429, `{"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":429}`
		}
		return 200, items(ids, func(string) int { return 201 })
	}
	s := fakeStore(t, f, nil)
	keys, values := docs(3)
	if err := s.StoreAll(context.Background(), keys, values); err != nil {
		t.Fatalf("StoreAll after three 429s: %v", err)
	}
	if len(f.bulks) != 4 {
		t.Fatalf("%d bulk requests, want 4", len(f.bulks))
	}

	f2 := &fakeES{bulk: func(int, []string) (int, string) { return 429, `{}` }}
	s2 := fakeStore(t, f2, func(c *Config) { c.BulkTries = 3 })
	err := s2.StoreAll(context.Background(), keys, values)
	if !errors.Is(err, ErrServer) || mapstore.Rejected(err) != nil {
		t.Fatalf("StoreAll with 429s only: %v, want ErrServer", err)
	}
	if len(f2.bulks) != 3 {
		t.Fatalf("%d bulk requests, want BulkTries = 3", len(f2.bulks))
	}
	if d := s2.pace.current(); d == 0 {
		t.Fatal("the pacer does not slow down after 429s")
	}
}

// The pacer doubles on 429 up to its maximum and halves back to nothing.
func TestPacer(t *testing.T) {
	p := &pacer{initial: 10 * time.Millisecond, max: 35 * time.Millisecond}
	var got []time.Duration
	for range 4 {
		p.throttled()
		got = append(got, p.current())
	}
	for range 3 {
		p.ok()
		got = append(got, p.current())
	}
	ms := time.Millisecond
	want := []time.Duration{10 * ms, 20 * ms, 35 * ms, 35 * ms, 35 * ms / 2, 35 * ms / 4, 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pacer delays %v, want %v", got, want)
	}
}

// Nobody listening: ErrUnavailable, at once.
func TestServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := New(Config{Addresses: []string{"http://" + addr}, Index: "down"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, values := docs(2)
	for name, call := range map[string]func() error{
		"StoreAll":    func() error { return s.StoreAll(ctx, keys, values) },
		"DeleteAll":   func() error { return s.DeleteAll(ctx, keys) },
		"Load":        func() error { _, _, err := s.Load(ctx, keys[0]); return err },
		"LoadAllKeys": func() error { return s.LoadAllKeys(ctx, func([]byte) error { return nil }) },
	} {
		if err := call(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with the server down: %v, want ErrUnavailable", name, err)
		}
	}
}

// A server that is not Elasticsearch fails the client's product check: ErrBadResponse.
func TestNotElasticsearch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"acknowledged":true}`)
	}))
	defer srv.Close()
	s, err := New(Config{Addresses: []string{srv.URL}, Index: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store(context.Background(), []byte("k"), []byte(`{}`)); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("Store on a server that is not Elasticsearch: %v, want ErrBadResponse", err)
	}
}

// Values that cannot be documents, and keys that cannot be _ids, are rejected locally; the
// others of the call are still sent.
func TestLocalRejections(t *testing.T) {
	f := &fakeES{bulk: func(_ int, ids []string) (int, string) { return 200, items(ids, func(string) int { return 201 }) }}
	s := fakeStore(t, f, nil)
	keys := [][]byte{[]byte("ok1"), {}, {0xff}, []byte("bad-json"), []byte("array"), []byte("multi-line"), []byte("ok2")}
	values := [][]byte{[]byte(`{}`), []byte(`{}`), []byte(`{}`), []byte(`{"a":`), []byte(`[1]`), []byte("{\n\"a\": 1\n}"), []byte(` {"b":2} `)}
	rej := mapstore.Rejected(s.StoreAll(context.Background(), keys, values))
	if rej == nil || fmt.Sprintf("%q", rej.Keys) != fmt.Sprintf("%q", [][]byte{{}, {0xff}, []byte("bad-json"), []byte("array")}) {
		t.Fatalf("rejected %v", rej)
	}
	if fmt.Sprint(f.bulks) != "[[ok1 multi-line ok2]]" {
		t.Fatalf("sent %v", f.bulks)
	}
}

// A multi-line document is compacted to one line; the bulk body is one JSON value per line.
func TestAppendDoc(t *testing.T) {
	got, err := appendDoc(nil, []byte("{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1, 2]\n}"))
	if err != nil || !bytes.Equal(got, []byte(`{"a":"x\ny","b":[1,2]}`+"\n")) {
		t.Fatalf("appendDoc = %q, %v", got, err)
	}
}

// A 413 (request too large) makes the call send smaller requests; a single document the server
// finds too large is rejected for good.
func TestRequestTooLarge(t *testing.T) {
	f := &fakeES{}
	f.bulk = func(_ int, ids []string) (int, string) {
		if len(ids) > 3 || slices.Contains(ids, "k5") { // k5 alone is too large
			return 413, ``
		}
		return 200, items(ids, func(string) int { return 201 })
	}
	s := fakeStore(t, f, nil)
	keys, values := docs(10)
	rej := mapstore.Rejected(s.StoreAll(context.Background(), keys, values))
	if rej == nil || len(rej.Keys) != 1 || string(rej.Keys[0]) != "k5" {
		t.Fatalf("rejected %v, want k5", rej)
	}
	stored := map[string]bool{}
	for _, b := range f.bulks {
		if len(b) <= 3 && !slices.Contains(b, "k5") {
			for _, id := range b {
				stored[id] = true
			}
		}
	}
	if len(stored) != 9 {
		t.Fatalf("stored %d documents (%v), want the 9 others", len(stored), f.bulks)
	}
}
