package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/generator"
)

// Under generated load, one of three node processes is killed with SIGKILL: every crash whose
// ID a node answered is processed in the end (the sweeper of the partitions' new owners finds
// the process entries the dead node's listener left).
func TestKillNodeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs node processes")
	}
	bin := filepath.Join(t.TempDir(), "socorro")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	const n = 3
	gossip := make([]string, n)
	for i := range gossip {
		a, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		gossip[i] = a
	}
	var urls []string
	var cmds []*exec.Cmd
	var logs []*strings.Builder
	// Registered first, so it runs last: after the processes have been killed and waited for,
	// when their logs are complete.
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("node%d log:\n%s", i, l)
			}
		}
	})
	ready := make(chan struct {
		i   int
		url string
	}, n)
	for i := range n {
		httpAddr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "node", "-name", "node"+strconv.Itoa(i), "-http", httpAddr, "-gossip", gossip[i],
			"-seeds", strings.Join(gossip, ","), "-expect", strconv.Itoa(n), "-data", filepath.Join(t.TempDir(), "data"),
			"-sweep-every", "500ms", "-sweep-age", "2s")
		var log strings.Builder
		logs = append(logs, &log)
		cmd.Stderr = &log
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if u, ok := strings.CutPrefix(sc.Text(), readyPrefix); ok {
					ready <- struct {
						i   int
						url string
					}{i, u}
				}
			}
			_, _ = io.Copy(io.Discard, out)
		}()
	}
	urls = make([]string, n)
	timeout := time.After(3 * time.Minute)
	for range n {
		select {
		case r := <-ready:
			urls[r.i] = r.url
		case <-timeout:
			t.Fatal("nodes did not start")
		}
	}

	dump, err := os.ReadFile("minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	small, err := generator.NewSizes(generator.Point{P: 0, Size: 50 << 10}, generator.Point{P: 1, Size: 300 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ann, err := generator.NewSizes(generator.Point{P: 0, Size: 256}, generator.Point{P: 1, Size: 2048})
	if err != nil {
		t.Fatal(err)
	}
	d, err := generator.New(generator.Config{Targets: urls, Dumps: [][]byte{dump}, Rate: 20, DumpSizes: &small, AnnotationSizes: &ann,
		Client: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitUntil(t, time.Minute, "40 reports answered before the kill", func() bool { return d.Stats().Accepted >= 40 })
	if err := cmds[2].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := d.Stats().Accepted
	waitUntil(t, 2*time.Minute, "40 more reports answered after the kill", func() bool { return d.Stats().Accepted >= killedAt+40 })
	cancel()
	<-done

	answered := d.Answered()
	t.Logf("%d answered, stats %+v", len(answered), d.Stats())
	pending := map[string]bool{}
	for _, id := range answered {
		pending[id] = true
	}
	waitUntil(t, 2*time.Minute, "every answered crash is processed", func() bool {
		for id := range pending {
			resp, err := http.Get(urls[0] + "/report/bp-" + id)
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), `id="status">processed`) {
				return false
			}
			delete(pending, id)
		}
		return true
	})
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
