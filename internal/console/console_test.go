package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type fixedSource struct{ c Cluster }

func (s fixedSource) Cluster(context.Context) Cluster { return s.c }

// recorder is a Publisher that keeps what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs []string
	err  error
}

func (r *recorder) Publish(_ context.Context, topic string, msg []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.msgs = append(r.msgs, topic+"="+string(msg))
	return nil
}

func newTestServer(t *testing.T, token string) (*Server, *httptest.Server) {
	t.Helper()
	s := &Server{cfg: Config{Addr: "127.0.0.1:0", Token: token, Source: fixedSource{Cluster{Self: "a", Members: []Member{{ID: "a"}}}}}}
	s.log = discardLogger()
	s.tokenHash = sha256Sum(token)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

func TestPublishNeedsToken(t *testing.T) {
	s, hs := newTestServer(t, "s3cret")
	rec := &recorder{}
	s.SetPublisher(rec)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"prefix of the token", "Bearer s3cre", http.StatusUnauthorized},
		{"not bearer", "Basic s3cret", http.StatusUnauthorized},
		{"right token", "Bearer s3cret", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", hs.URL+"/api/topics/command/publish", strings.NewReader("s2"))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if got := strings.Join(rec.msgs, ","); got != "command=s2" {
		t.Fatalf("publisher got %q, want exactly the authorized message", got)
	}
}

func TestPublishWithoutConfiguredTokenIsForbidden(t *testing.T) {
	s, hs := newTestServer(t, "")
	rec := &recorder{}
	s.SetPublisher(rec)
	req, _ := http.NewRequest("POST", hs.URL+"/api/topics/command/publish", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(rec.msgs) != 0 {
		t.Fatalf("status %d, published %v: want 403 and nothing published", resp.StatusCode, rec.msgs)
	}
}

func TestPublishFailures(t *testing.T) {
	s, hs := newTestServer(t, "t")
	post := func(body string) int {
		req, _ := http.NewRequest("POST", hs.URL+"/api/topics/x/publish", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("m"); got != http.StatusServiceUnavailable {
		t.Fatalf("no publisher: status %d, want 503", got)
	}
	s.SetPublisher(&recorder{err: errors.New("topic down")})
	if got := post("m"); got != http.StatusBadGateway {
		t.Fatalf("failing publisher: status %d, want 502", got)
	}
	s.SetPublisher(&recorder{})
	if got := post(strings.Repeat("x", MaxMessageSize+1)); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized message: status %d, want 413", got)
	}
}

func TestClusterAPIAndStaticFiles(t *testing.T) {
	_, hs := newTestServer(t, "t")
	resp, err := http.Get(hs.URL + "/api/cluster")
	if err != nil {
		t.Fatal(err)
	}
	var c Cluster
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c.Self != "a" || len(c.Members) != 1 || !c.CanWrite {
		t.Fatalf("cluster %+v", c)
	}
	for _, path := range []string{"/", "/app.js", "/style.css"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(b) == 0 {
			t.Fatalf("%s: status %d, %d bytes", path, resp.StatusCode, len(b))
		}
		// The SVG namespace is a name, not a fetch.
		text := strings.ReplaceAll(string(b), `"http://www.w3.org/2000/svg"`, "")
		if strings.Contains(text, "http://") || strings.Contains(text, "https://") || strings.Contains(text, "//cdn") {
			t.Fatalf("%s refers to another site: the page must work offline", path)
		}
	}
}

func TestHistoryRates(t *testing.T) {
	var h History
	t0 := time.Unix(1000, 0)
	if r, at := h.Rates(); len(r) != 0 || !at.IsZero() {
		t.Fatalf("empty history: %v %v", r, at)
	}
	h.Add(t0, 100)
	h.Add(t0.Add(time.Second), 300)
	h.Add(t0.Add(3*time.Second), 700)
	h.Add(t0.Add(4*time.Second), 5) // restarted counter: new base, no sample
	h.Add(t0.Add(5*time.Second), 15)
	r, at := h.Rates()
	want := []float64{200, 200, 10}
	if len(r) != len(want) || !at.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("rates %v at %v, want %v", r, at, want)
	}
	for i := range want {
		if r[i] != want[i] {
			t.Fatalf("rates %v, want %v", r, want)
		}
	}
	for i := range HistoryLen + 10 {
		h.Add(t0.Add(time.Duration(6+i)*time.Second), uint64(15+i))
	}
	if r, _ := h.Rates(); len(r) != HistoryLen || r[0] != 1 {
		t.Fatalf("full history: %d samples, first %v", len(r), r[0])
	}
}

func TestSummarize(t *testing.T) {
	c := Cluster{Members: []Member{
		{ID: "a", Maps: []Map{{Name: "m", Entries: 2, Ops: map[string]uint64{"put": 2}, OldestDirtyMs: 5}}, Topics: []Topic{{Name: "t", Published: 1}}},
		{ID: "b", Maps: []Map{{Name: "m", Entries: 3, Ops: map[string]uint64{"put": 1}, OldestDirtyMs: 9}}, Queues: []Queue{{Name: "q", Size: 4}}},
	}}
	c.Summarize()
	if len(c.Maps) != 1 || c.Maps[0].Entries != 5 || c.Maps[0].Ops["put"] != 3 || c.Maps[0].OldestDirtyMs != 9 {
		t.Fatalf("maps %+v", c.Maps)
	}
	if len(c.Topics) != 1 || c.Topics[0].Published != 1 || len(c.Queues) != 1 || c.Queues[0].Size != 4 {
		t.Fatalf("topics %+v queues %+v", c.Topics, c.Queues)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{}.Validate()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Addr") || !strings.Contains(err.Error(), "Source") {
		t.Fatalf("Validate of the zero Config: %v", err)
	}
	if _, err := New(Config{Addr: "nonsense", Source: fixedSource{}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with a bad address: %v", err)
	}
}
