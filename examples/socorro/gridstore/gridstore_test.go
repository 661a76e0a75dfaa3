package gridstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/examples/socorro/collector"
)

// One member serves both tests: starting one takes seconds.
func TestGridStore(t *testing.T) {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Close(ctx) })
	store, err := New(member, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("submit into the grid", func(t *testing.T) { testSubmitIntoGrid(t, store) })
	t.Run("all or nothing", func(t *testing.T) { testSaveAllOrNothing(t, store) })
}

// A real dump submitted over HTTP lands in crashReports and process under the answered crash
// ID, whole.
func testSubmitIntoGrid(t *testing.T, store *Store) {
	ctx := context.Background()
	h, err := collector.NewHandler(collector.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	dump, err := os.ReadFile("../minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("ProductName", "Firefox")
	fw, _ := w.CreateFormFile("upload_file_minidump", "test.dmp")
	fw.Write(dump)
	w.Close()
	resp, err := http.Post(srv.URL+"/submit", w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id, ok := strings.CutPrefix(strings.TrimSpace(string(answer)), "CrashID=bp-")
	if resp.StatusCode != http.StatusOK || !ok {
		t.Fatalf("%d %q", resp.StatusCode, answer)
	}

	c, err := store.Report(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Dumps["upload_file_minidump"], dump) || c.Annotations["ProductName"] != "Firefox" || c.ID != id {
		t.Errorf("stored report differs: id %s annotations %v", c.ID, c.Annotations)
	}
	at, err := store.Pending(ctx, id)
	if err != nil || !at.Equal(c.Submitted) {
		t.Errorf("process entry %v %v, want %v", at, err, c.Submitted)
	}
}

// A save whose context has ended writes neither entry.
func testSaveAllOrNothing(t *testing.T, store *Store) {
	ctx := context.Background()
	done, cancel := context.WithCancel(ctx)
	cancel()
	const id = "de1bb258-cbbf-4589-a673-34f800261204"
	err := store.Save(done, &collector.Crash{ID: id, Submitted: time.Now(), Annotations: map[string]string{"ProductName": "Firefox"}})
	if err == nil {
		t.Fatal("save with an ended context succeeded")
	}
	if _, err := store.Report(ctx, id); !errors.Is(err, dmap.ErrNotFound) {
		t.Errorf("report: %v, want not found", err)
	}
	if _, err := store.Pending(ctx, id); !errors.Is(err, dmap.ErrNotFound) {
		t.Errorf("process entry: %v, want not found", err)
	}
}
