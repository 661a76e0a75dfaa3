package gridmap

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gridmap/gridmap/internal/browsertest"
	"github.com/gridmap/gridmap/queue"
	"github.com/gridmap/gridmap/topic"
)

// TestConsoleInBrowser drives the console of one member of a 3-member cluster in headless
// chromium: the member list and partition counts match the partition table, the throughput
// chart moves under load, and the publish form reaches the topic hook (refused without the
// token). It leaves a screenshot in the test's artifact directory.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browsertest.Start(t, 3*time.Minute)
	const token = "s3cret-token"
	members := startCluster(t, 3, func(c *Config) {
		if c.Name == "m0" {
			c.Console = ConsoleConfig{Addr: "127.0.0.1:0", Token: token}
		}
	})
	slices.SortFunc(members, func(a, b *Member) int { return strings.Compare(a.cfg.Name, b.cfg.Name) })
	m0, m1 := members[0], members[1]
	m2 := members[2]
	// A real subscriber of topic "command" on another member: the form's message must reach it.
	cmd, err := topic.New[string](m2.Topics(), "command")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cmd.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// A real queue with 7 items: the queues table shows them.
	jobs, err := queue.New[string](m1.Queues(), "process")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if err := jobs.Offer(context.Background(), fmt.Sprint("crash-", i)); err != nil {
			t.Fatal(err)
		}
	}

	url := "http://" + m0.ConsoleAddr() + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`#members tbody tr`))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}

	// Members and partition counts, against the table.
	want := map[string]float64{}
	for _, p := range m0.Cluster().Partitions() {
		want[string(p.Owner)]++
	}
	browsertest.WaitPage(t, ctx, 20*time.Second, "members with the table's partition counts",
		`Object.fromEntries(Array.from(document.querySelectorAll('#members tbody tr'))
			.filter(r => r.classList.contains('alive'))
			.map(r => [r.dataset.id, Number(r.querySelector('.owned').textContent)]))`,
		func(got map[string]float64) bool {
			if len(got) != 3 {
				return false
			}
			for _, m := range members {
				if got[string(m.ID())] != want[string(m.ID())] {
					return false
				}
			}
			return true
		})

	// Load through m1: its line of the chart must rise.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopLoad(); wg.Wait() }()
	mp, err := GetMap[string, string](m1, "load")
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		for i := 0; loadCtx.Err() == nil; i++ {
			_ = mp.Put(loadCtx, fmt.Sprint("k", i%500), "v")
		}
	})
	rate := browsertest.WaitPage(t, ctx, 30*time.Second, "the chart moving under load",
		fmt.Sprintf(`Number((document.querySelector('#chart polyline[data-member="%s"]') || {dataset: {}}).dataset.last || 0)`, m1.ID()),
		func(r float64) bool { return r > 0 })
	t.Logf("chart shows %.0f ops/s for the loaded member", rate)
	browsertest.WaitPage(t, ctx, 10*time.Second, "the loaded map's entries in the maps table",
		`Number((document.querySelector('#maps tr[data-map="load"] .entries') || {}).textContent || 0)`,
		func(n float64) bool { return n > 0 })

	// Publish: refused without the token, delivered with it.
	status := func(want string) {
		t.Helper()
		browsertest.WaitPage(t, ctx, 10*time.Second, "publish status "+want,
			`document.getElementById('publish-status').textContent`,
			func(s string) bool { return strings.Contains(s, want) })
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#publish-topic`), "command"),
		chromedp.SetValue(chromedp.CSS(`#publish-message`), "l3000"),
		chromedp.Click(chromedp.CSS(`#publish-send`)),
	); err != nil {
		t.Fatal(err)
	}
	status("401")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#publish-message`), "s2"),
		chromedp.SetValue(chromedp.CSS(`#publish-token`), token),
		chromedp.Click(chromedp.CSS(`#publish-send`)),
	); err != nil {
		t.Fatal(err)
	}
	status("published 2 bytes to command")
	select {
	case msg := <-sub.Messages():
		if msg.Err != nil || msg.Value != "s2" || msg.Missed != 0 {
			t.Fatalf("the subscriber received %+v, want only the authorized message s2", msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the subscriber on another member did not receive the published message")
	}
	browsertest.WaitPage(t, ctx, 10*time.Second, "the queue listed with its 7 items",
		`Number((document.querySelector('#queues tr[data-queue="process"] td:nth-child(2)') || {}).textContent || 0)`,
		func(n float64) bool { return n == 7 })
	browsertest.WaitPage(t, ctx, 10*time.Second, "the topic listed with its published count",
		`Number((document.querySelector('#topics tr[data-topic="command"] td:nth-child(2)') || {}).textContent || 0)`,
		func(n float64) bool { return n == 1 })

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "console.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
