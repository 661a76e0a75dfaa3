package node

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/generator"
)

// With KeepRaw, a crash's raw report (annotations and dumps) goes after that time, and its
// processed crash stays: its page says the raw crash is gone, its dump is no longer served.
func TestKeepRaw(t *testing.T) {
	const keep = 2 * time.Second
	nodes := startClusterWith(t, 2, func(_ int, c *Config) { c.KeepRaw = keep })
	dump, err := os.ReadFile("../minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{"ProductName": "Firefox", "Version": "140.0", "ReleaseChannel": "release", "BuildID": "20260101000000"}
	ct, body, err := generator.Encode(generator.Report{Annotations: ann, Dump: dump}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	status, answer := post(t, nodes[0].URL(), ct, body, false)
	id, ok := strings.CutPrefix(answer, "CrashID=bp-")
	if status != http.StatusOK || !ok {
		t.Fatalf("post: %d %q", status, answer)
	}
	page := nodes[1].URL() + "/report/bp-" + id
	dumpURL := page + "/dump/upload_file_minidump"
	var text string
	waitFor(t, time.Minute, "the crash is processed", func() bool {
		status, text = get(t, page)
		return status == http.StatusOK && strings.Contains(text, `id="signature"`)
	})
	if strings.Contains(text, `id="raw-gone"`) {
		t.Fatalf("the raw crash is gone at once: %s", text)
	}
	if status, _ := get(t, dumpURL); status != http.StatusOK {
		t.Fatalf("dump while kept: %d", status)
	}
	waitFor(t, time.Minute, "the raw crash is gone", func() bool {
		status, text = get(t, page)
		return status == http.StatusOK && strings.Contains(text, `id="raw-gone"`)
	})
	if !strings.Contains(text, `id="signature"`) {
		t.Fatalf("the processed crash went with the raw one: %s", text)
	}
	if status, _ := get(t, dumpURL); status != http.StatusNotFound {
		t.Fatalf("dump after KeepRaw: %d, want 404", status)
	}
	other := "0" + id[1:] // a valid crash ID no crash has
	if id[0] == '0' {
		other = "1" + id[1:]
	}
	if status, _ := get(t, nodes[0].URL()+"/report/bp-"+other); status != http.StatusNotFound {
		t.Fatalf("page of an unknown crash: %d, want 404", status)
	}
}
