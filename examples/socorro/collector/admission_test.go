package collector

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Beyond the in-flight budget a submission is answered 503 with Retry-After and is not stored;
// once the submissions in flight are saved the next one is accepted. A submission larger than
// the whole budget is admitted alone.
func TestSubmitOverloaded(t *testing.T) {
	store := &memStore{entered: make(chan struct{}, 4), gate: make(chan struct{})}
	h, err := NewHandler(Config{Store: store, MaxInFlightBytes: 4 << 10, RetryAfter: 3 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	big := body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", bytes.Repeat([]byte{7}, 10<<10)))
	small := body(t, field("ProductName", "Firefox"))

	// The big one, alone, is admitted although it exceeds the budget; it waits in Save.
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/submit", bytes.NewReader(big))
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
	if got := h.InFlightBytes(); got < int64(len(big)) {
		t.Errorf("in flight %d bytes, want at least the submission's %d", got, len(big))
	}

	// Meanwhile a small one does not fit: 503, Retry-After, nothing stored.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/submit", bytes.NewReader(small))
	req.Header.Set("Content-Type", formType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" || strings.TrimSpace(string(b)) != "Error=overloaded" {
		t.Fatalf("overloaded: %d Retry-After %q %q, want 503, 3, Error=overloaded", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if h.Refused() != 1 {
		t.Errorf("Refused %d, want 1", h.Refused())
	}

	close(store.gate)
	if r := <-done; !strings.HasPrefix(r, "CrashID=bp-") {
		t.Fatalf("the admitted submission: %q", r)
	}
	if got := h.InFlightBytes(); got != 0 {
		t.Errorf("in flight %d bytes after every answer, want 0", got)
	}
	status, answer := post(t, srv.URL+"/submit", small, formType, "")
	if status != http.StatusOK || !strings.HasPrefix(answer, "CrashID=bp-") {
		t.Fatalf("after the load: %d %q", status, answer)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.crashes) != 2 {
		t.Errorf("%d crashes stored, want the 2 accepted", len(store.crashes))
	}
}

// A gzipped submission is charged its decoded size once parsed, so the budget bounds the bytes
// held in memory, not the bytes sent.
func TestSubmitChargesDecodedSize(t *testing.T) {
	store := &memStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	h, err := NewHandler(Config{Store: store, MaxInFlightBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	plain := body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", bytes.Repeat([]byte{0}, 512<<10)))
	gz := gzipped(t, plain)
	done := make(chan int, 1)
	go func() {
		status, _ := post(t, srv.URL+"/submit", gz, formType, "gzip")
		done <- status
	}()
	<-store.entered
	if got := h.InFlightBytes(); got < 512<<10 {
		t.Errorf("in flight %d bytes for a %d-byte gzip body of a 512 KiB dump, want at least the dump", got, len(gz))
	}
	close(store.gate)
	if status := <-done; status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if got := h.InFlightBytes(); got != 0 {
		t.Errorf("in flight %d bytes after the answer, want 0", got)
	}
}
