package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gridmap/gridmap/internal/browsertest"
)

// screenshot saves the page as name in the test's artifact directory (go test -artifacts keeps
// it).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// TestPagesInBrowser drives the Socorro pages of a 3-node cluster in headless chromium: the
// browser posts a real minidump to /submit as a form (multipart, as a crash client does), the
// crash's report page on another node shows it pending, then (refreshing itself) processed with
// the minidump's reason and signature; the index pages list it; "s2" sent through the command
// form sets every node's generator going, and the pages show the new setting and the
// collected rates rising. Screenshots go to the test's artifact directory.
func TestPagesInBrowser(t *testing.T) {
	ctx := browsertest.Start(t, 3*time.Minute)
	genDump, err := os.ReadFile("../minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile("../minidump/testdata/linux-mini.dmp")
	if err != nil {
		t.Fatal(err)
	}
	// The listener holds the first crash until the test has seen it pending: processing a
	// small dump takes milliseconds, faster than a page loads.
	held := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(held) }) }
	t.Cleanup(release)
	nodes := startClusterWith(t, 3, func(i int, c *Config) {
		c.Dumps, c.DumpSizes = [][]byte{genDump}, smallDumps(t)
		c.beforeProcess = func(ctx context.Context, id string) {
			select {
			case <-held:
			case <-ctx.Done():
			}
		}
	})

	// The index of node n0: the cluster, the idle generators, the form.
	if err := chromedp.Do(ctx, chromedp.Navigate(nodes[0].URL()+"/"), chromedp.WaitVisible(chromedp.CSS(`#command-form`))); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitPage(t, ctx, 10*time.Second, "the index showing 3 members and idle generators",
		`document.querySelector('.members').textContent + ' | ' + document.getElementById('generator-rate').textContent`,
		func(s string) bool {
			return strings.HasPrefix(s, "Cluster: 3 members") && strings.HasSuffix(s, "| 0.00")
		})
	browsertest.WaitPage(t, ctx, 20*time.Second, "the nodes table listing the 3 nodes",
		`document.querySelectorAll('#nodes tr').length`, func(n int) bool { return n == 4 })
	screenshot(t, ctx, "index-idle.png")

	// The browser posts the dump to n1's /submit as a multipart form, annotations as fields.
	if err := chromedp.Do(ctx, chromedp.Navigate(nodes[1].URL()+"/")); err != nil {
		t.Fatal(err)
	}
	answer, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(async () => {
		const bytes = Uint8Array.from(atob(%q), c => c.charCodeAt(0));
		const form = new FormData();
		form.append('ProductName', 'Firefox');
		form.append('Version', '140.0');
		form.append('ReleaseChannel', 'release');
		form.append('BuildID', '20260101000000');
		form.append('upload_file_minidump', new Blob([bytes], {type: 'application/octet-stream'}), 'linux-mini.dmp');
		const r = await fetch('/submit', {method: 'POST', body: form});
		return r.status + ' ' + (await r.text()).trim();
	})()`, base64.StdEncoding.EncodeToString(dump)), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("submit from the browser: %v", err)
	}
	id, ok := strings.CutPrefix(answer, "200 CrashID=bp-")
	if !ok {
		t.Fatalf("submit from the browser: %q, want 200 CrashID=bp-<id>", answer)
	}
	t.Logf("submitted bp-%s from the browser", id)

	// Its report page on n2: pending while the processor holds it, then processed: the page
	// refreshes itself while pending, the test only reads it.
	if err := chromedp.Do(ctx, chromedp.Navigate(nodes[2].URL()+"/report/bp-"+id), chromedp.WaitVisible(chromedp.CSS(`#status`))); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitPage(t, ctx, 10*time.Second, "the report pending", `document.getElementById('status').className`,
		func(s string) bool { return s == "status pending" })
	browsertest.WaitPage(t, ctx, 10*time.Second, "the dump listed with its size",
		`Array.from(document.querySelectorAll('.dumps td')).map(td => td.textContent).join(' ')`,
		func(s string) bool { return strings.Contains(s, fmt.Sprintf("upload_file_minidump %d", len(dump))) })
	screenshot(t, ctx, "report-pending.png")
	release()
	browsertest.WaitPage(t, ctx, 30*time.Second, "the report processed", `document.getElementById('status').className`,
		func(s string) bool { return s == "status processed" })
	fields := browsertest.WaitPage(t, ctx, 10*time.Second, "the processed fields",
		`document.getElementById('reason').textContent + ' | ' + document.getElementById('signature').textContent`,
		func(s string) bool { return strings.Contains(s, "SIGSEGV") })
	if strings.TrimSpace(strings.SplitN(fields, "|", 2)[1]) == "" {
		t.Errorf("processed crash without a signature: %q", fields)
	}
	t.Logf("processed: %s", fields)
	screenshot(t, ctx, "report-processed.png")

	// Every node's index lists it among the cluster's recent crashes (from the grid).
	for _, nd := range nodes {
		if err := chromedp.Do(ctx, chromedp.Navigate(nd.URL()+"/")); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitPage(t, ctx, 20*time.Second, nd.cfg.Name+"'s index listing the crash",
			fmt.Sprintf(`!!document.querySelector('#recent a[href="/report/bp-%s"]')`, id), func(b bool) bool { return b })
	}

	// "s2" through n0's form: every node generates 2 reports a second; the pages show the
	// setting, and the collected rates rise on n0's page for every node.
	if err := chromedp.Do(ctx, chromedp.Navigate(nodes[0].URL()+"/"), chromedp.WaitVisible(chromedp.CSS(`#command-form`))); err != nil {
		t.Fatal(err)
	}
	var before float64
	for _, nd := range nodes {
		before += float64(nd.Rates().CollectedPerMinute)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#command`), "s2"),
		chromedp.Click(chromedp.CSS(`#command-send`)),
	); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitPage(t, ctx, 30*time.Second, "the page showing 2 reports/s per node and this node at 2.00",
		`document.getElementById('per-node').textContent + ' ' + document.getElementById('generator-rate').textContent`,
		func(s string) bool { return s == "2 2.00" })
	rates := browsertest.WaitPage(t, ctx, 40*time.Second, "every node's collected rate rising on the page",
		`Array.from(document.querySelectorAll('#nodes tr')).slice(1).map(r => Number(r.children[1].textContent))`,
		func(r []float64) bool {
			if len(r) != 3 {
				return false
			}
			var sum float64
			for _, v := range r {
				if v == 0 {
					return false
				}
				sum += v
			}
			return sum > before
		})
	t.Logf("collected/min per node after s2: %v (before: %v in all)", rates, before)
	screenshot(t, ctx, "index-s2.png")
	for _, nd := range nodes[1:] {
		if err := chromedp.Do(ctx, chromedp.Navigate(nd.URL()+"/")); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitPage(t, ctx, 10*time.Second, nd.cfg.Name+"'s page showing its generator at 2.00",
			`document.getElementById('generator-rate').textContent`, func(s string) bool { return s == "2.00" })
	}
	// Stop the generators before the cluster closes.
	if err := nodes[0].Command(context.Background(), "stop"); err != nil {
		t.Fatal(err)
	}
}
