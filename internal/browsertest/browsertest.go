// Package browsertest starts a headless chromium for the browser tests of the console and of
// the Socorro pages, and waits for what a page shows. It is for tests only.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Find returns the path of the browser the tests drive: $GRIDMAP_CHROMIUM, else chromium on
// the PATH (Debian's package, which .ci/run installs); "" if there is none.
func Find() string {
	if p := os.Getenv("GRIDMAP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Chromium returns Find's browser. Without one the test is skipped, except in CI (CI=true),
// where it fails.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := Find(); p != "" {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium found (CI=true: .ci/run installs Debian's chromium)")
	}
	t.Skip("no chromium on the PATH (apt-get install chromium, or set GRIDMAP_CHROMIUM)")
	return ""
}

// Start starts a headless chromium for the test, stopped at its end or after timeout, and
// returns its context.
func Start(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(Chromium(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1100),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// WaitPage evaluates expr in the page until ok accepts its result, or fails the test after d.
// Pages that refresh themselves may meet an evaluation while loading: such errors are retried
// like a result not yet accepted.
func WaitPage[T any](t testing.TB, ctx context.Context, d time.Duration, what, expr string, ok func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(d)
	var v T
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		if err == nil {
			v = got
			if ok(got) {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within %v (last: %+v, err %v)", what, d, v, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the page, not waiting for a fixed time
	}
}
