package collector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore records saved crashes; fail makes Save fail; gate, when set, holds Save until closed.
type memStore struct {
	mu      sync.Mutex
	crashes map[string]*Crash
	fail    error
	entered chan struct{}
	gate    chan struct{}
}

func (m *memStore) Save(ctx context.Context, c *Crash) error {
	if m.entered != nil {
		m.entered <- struct{}{}
	}
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.crashes == nil {
		m.crashes = map[string]*Crash{}
	}
	m.crashes[c.ID] = c
	return nil
}

var submitTime = time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)

func newServer(t *testing.T, store Store, rules []Rule) *httptest.Server {
	t.Helper()
	h, err := NewHandler(Config{
		Store:  store,
		Rules:  rules,
		Now:    func() time.Time { return submitTime },
		Sample: mrand.New(mrand.NewPCG(1, 2)),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url string, b []byte, contentType, encoding string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	req.Header.Set("User-Agent", "Breakpad/1.0 (Linux)")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(out)
}

// Each real dump, posted with form fields and with a JSON "extra" part, plain and gzipped, comes
// back as a crash ID and reaches the store whole.
func TestSubmitRealDumps(t *testing.T) {
	store := &memStore{}
	srv := newServer(t, store, nil)
	dumps := realDumps(t)
	for _, file := range sortedKeys(dumps) {
		d := dumps[file]
		for _, mode := range []string{"fields", "extra"} {
			for _, gz := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/gzip=%v", file, mode, gz)
				second := []byte("a second dump for " + file)
				var b []byte
				if mode == "fields" {
					b = body(t, field("ProductName", "Firefox"), field("Version", "128.0"), field("BuildID", "20240701094500"),
						dump("upload_file_minidump", d), dump("upload_file_minidump_browser", second))
				} else {
					b = body(t, extra(`{"ProductName":"Firefox","Version":"128.0","BuildID":"20240701094500"}`),
						dump("upload_file_minidump", d), dump("upload_file_minidump_browser", second))
				}
				enc := ""
				if gz {
					b, enc = gzipped(t, b), "gzip"
				}
				status, resp := post(t, srv.URL+"/submit", b, formType, enc)
				if status != http.StatusOK || !strings.HasPrefix(resp, "CrashID=bp-") {
					t.Fatalf("%s: %d %q", name, status, resp)
				}
				id := strings.TrimSpace(strings.TrimPrefix(resp, "CrashID=bp-"))
				if !ValidCrashID(id) || !strings.HasSuffix(id, "0261204") {
					t.Errorf("%s: crash ID %q: want valid, accepted (0), submitted 261204", name, id)
				}
				store.mu.Lock()
				c := store.crashes[id]
				store.mu.Unlock()
				if c == nil {
					t.Fatalf("%s: crash %s not in the store", name, id)
				}
				if !bytes.Equal(c.Dumps["upload_file_minidump"], d) || !bytes.Equal(c.Dumps["upload_file_minidump_browser"], second) || len(c.Dumps) != 2 {
					t.Errorf("%s: dumps differ from what was posted", name)
				}
				sum := sha256.Sum256(d)
				if c.Metadata.DumpChecksums["upload_file_minidump"] != hex.EncodeToString(sum[:]) {
					t.Errorf("%s: checksum %s", name, c.Metadata.DumpChecksums["upload_file_minidump"])
				}
				want := map[string]string{"ProductName": "Firefox", "Version": "128.0", "BuildID": "20240701094500", "uuid": id}
				if len(c.Annotations) != len(want) {
					t.Errorf("%s: annotations %v", name, c.Annotations)
				}
				for k, v := range want {
					if c.Annotations[k] != v {
						t.Errorf("%s: %s = %q, want %q", name, k, c.Annotations[k], v)
					}
				}
				wantPayload := map[string]string{"fields": "multipart", "extra": "json"}[mode]
				if c.Metadata.Payload != wantPayload || c.Metadata.Compressed != gz || c.Metadata.UserAgent != "Breakpad/1.0 (Linux)" ||
					!c.Submitted.Equal(submitTime) || c.Metadata.ThrottleRule != "accept_everything" || c.Metadata.PayloadSize != int64(len(b)) {
					t.Errorf("%s: metadata %+v submitted %v", name, c.Metadata, c.Submitted)
				}
			}
		}
	}
}

// A client that does not know its body's length (Crashpad's libcurl transport gzipping on the
// fly) sends it chunked; the collector takes it.
func TestSubmitChunked(t *testing.T) {
	store := &memStore{}
	srv := newServer(t, store, nil)
	d := realDumps(t)["linux-mini.dmp"]
	b := gzipped(t, body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", d)))
	// A reader that is not a *bytes.Reader: the client cannot know the length and chunks.
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/submit", io.MultiReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", formType)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id, ok := strings.CutPrefix(strings.TrimSpace(string(answer)), "CrashID=bp-")
	if resp.StatusCode != http.StatusOK || !ok || req.ContentLength != 0 {
		t.Fatalf("%d %q (request length %d)", resp.StatusCode, answer, req.ContentLength)
	}
	if c := store.crashes[id]; c == nil || !bytes.Equal(c.Dumps["upload_file_minidump"], d) || c.Metadata.PayloadSize != int64(len(b)) {
		t.Errorf("stored %+v", c)
	}
}

// Every malformed reason reaches the client as 400 "Discarded=malformed_<reason>", and nothing
// reaches the store.
func TestSubmitMalformed(t *testing.T) {
	store := &memStore{}
	srv := newServer(t, store, nil)
	valid := body(t, field("ProductName", "Firefox"))
	for _, tc := range []struct {
		contentType, encoding string
		body                  []byte
		want                  Reason
	}{
		{"", "", valid, NoContentType},
		{"text/plain", "", valid, WrongContentType},
		{"multipart/form-data", "", valid, NoBoundary},
		{formType, "", nil, NoContentLength},
		{formType, "gzip", valid, BadGzip},
		{formType, "", body(t, extra(`{`)), InvalidJSON},
		{formType, "", body(t, extra(`[]`)), InvalidJSONValue},
		{formType, "", body(t, field("a", "b"), dump("processed_crash", nil)), InvalidDumpName},
		{formType, "", []byte("garbage"), InvalidPayloadStructure},
		{formType, "", body(t, dump("upload_file_minidump", []byte("MDMP"))), NoAnnotations},
		{formType, "", body(t, field("uuid", "not-a-crash-id")), InvalidUUID},
	} {
		status, resp := post(t, srv.URL+"/submit", tc.body, tc.contentType, tc.encoding)
		if status != http.StatusBadRequest || resp != "Discarded=malformed_"+string(tc.want)+"\n" {
			t.Errorf("%s: %d %q", tc.want, status, resp)
		}
	}
	if len(store.crashes) != 0 {
		t.Errorf("%d malformed crashes stored", len(store.crashes))
	}
}

// Past the limit the handler answers 413 and stores nothing; the limit counts decompressed bytes.
// (The default limit is 25 MiB, TestDefaultLimit; a small one keeps this test fast.)
func TestSubmitTooLarge(t *testing.T) {
	store := &memStore{}
	h, err := NewHandler(Config{Store: store, MaxBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	big := body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", make([]byte, 256<<10)))
	for _, gz := range []bool{false, true} {
		b, enc := big, ""
		if gz {
			b, enc = gzipped(t, big), "gzip"
		}
		status, resp := post(t, srv.URL+"/submit", b, formType, enc)
		if status != http.StatusRequestEntityTooLarge || resp != "Discarded=too_large\n" {
			t.Errorf("gzip=%v: %d %q, want 413", gz, status, resp)
		}
	}
	if len(store.crashes) != 0 {
		t.Errorf("%d crashes stored", len(store.crashes))
	}
}

func TestDefaultLimit(t *testing.T) {
	if got := (Config{}).WithDefaults().MaxBytes; got != 25<<20 || DefaultMaxBytes != 25*1024*1024 {
		t.Errorf("default MaxBytes %d, DefaultMaxBytes %d: want 25 MiB", got, DefaultMaxBytes)
	}
}

// A client that sends its crash ID keeps it.
func TestSubmitKeepsClientUUID(t *testing.T) {
	store := &memStore{}
	srv := newServer(t, store, nil)
	const id = "de1bb258-cbbf-4589-a673-34f800160918"
	status, resp := post(t, srv.URL+"/submit", body(t, field("ProductName", "Firefox"), field("uuid", id)), formType, "")
	if status != http.StatusOK || resp != "CrashID=bp-"+id+"\n" {
		t.Fatalf("%d %q", status, resp)
	}
	if store.crashes[id] == nil {
		t.Error("not stored under the client's ID")
	}
}

// The crash ID is answered only after Save returned; a failed Save answers 500 and no ID.
func TestSubmitAnswersAfterStore(t *testing.T) {
	store := &memStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	srv := newServer(t, store, nil)
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/submit", bytes.NewReader(body(t, field("ProductName", "Firefox"))))
		req.Header.Set("Content-Type", formType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	<-store.entered
	select {
	case r := <-done:
		t.Fatalf("answered %q before the store call returned", r)
	default:
	}
	close(store.gate)
	select {
	case r := <-done:
		if !strings.HasPrefix(r, "CrashID=bp-") {
			t.Fatalf("answer %q", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the store call returned")
	}

	failing := &memStore{fail: errors.New("no quorum")}
	srv2 := newServer(t, failing, nil)
	status, resp := post(t, srv2.URL+"/submit", body(t, field("ProductName", "Firefox")), formType, "")
	if status != http.StatusInternalServerError || strings.Contains(resp, "CrashID") {
		t.Errorf("store failure: %d %q, want 500 without a crash ID", status, resp)
	}

	// A store without room (a grid at its memory budget): back-pressure, not a failure.
	full := &memStore{fail: fmt.Errorf("grid: %w: memory budget", ErrStoreFull)}
	srv3 := newServer(t, full, nil)
	r, err := http.Post(srv3.URL+"/submit", formType, bytes.NewReader(body(t, field("ProductName", "Firefox"))))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || strings.Contains(string(got), "CrashID") {
		t.Errorf("store full: %d Retry-After %q %q, want 503 with Retry-After and no crash ID", r.StatusCode, r.Header.Get("Retry-After"), got)
	}
}

func TestSubmitThrottled(t *testing.T) {
	store := &memStore{}
	rules := []Rule{
		{Name: "thunderbird", Key: "ProductName", Values: []string{"Thunderbird"}, Percent: 100, Result: Defer},
		{Name: "firefox", Key: "ProductName", Values: []string{"Firefox"}, Percent: 100, Result: Accept},
	}
	srv := newServer(t, store, rules)
	status, resp := post(t, srv.URL+"/submit", body(t, field("ProductName", "Fennec")), formType, "")
	if status != http.StatusOK || resp != "Discarded=rule_NO_MATCH\n" {
		t.Errorf("unknown product: %d %q", status, resp)
	}
	_, resp = post(t, srv.URL+"/submit", body(t, field("ProductName", "Thunderbird")), formType, "")
	id := strings.TrimSpace(strings.TrimPrefix(resp, "CrashID=bp-"))
	if !ValidCrashID(id) || id[29] != '1' {
		t.Errorf("deferred crash: %q, want a crash ID with throttle digit 1", resp)
	}
	if c := store.crashes[id]; c == nil || c.Metadata.ThrottleResult != Defer || c.Metadata.ThrottleRule != "thunderbird" {
		t.Errorf("deferred crash stored as %+v", c)
	}
}

func TestSubmitMethod(t *testing.T) {
	srv := newServer(t, &memStore{}, nil)
	resp, err := http.Get(srv.URL + "/submit")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := NewHandler(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no store: %v", err)
	}
	if _, err := NewHandler(Config{Store: &memStore{}, Rules: []Rule{{Name: "x", Percent: 101}}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("percent 101: %v", err)
	}
}
