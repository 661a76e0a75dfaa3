package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gridmap/gridmap/examples/socorro/node"
	"time"
)

// The launcher builds, starts three node processes that serve their pages and /submit, runs
// the generator against them, and on SIGINT stops every node gracefully and exits 0.
func TestLauncherStartsAndStopsNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo")
	}
	bin := filepath.Join(t.TempDir(), "socorro")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-port", "0", "-rate", "1", "-data", filepath.Join(t.TempDir(), "data"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer // read while the launcher writes
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})

	nodeLine := regexp.MustCompile(`^node\d: (http://\S+)/$`)
	var urls []string
	var all []string
	deadline := time.After(3 * time.Minute)
	for len(urls) < 3 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("launcher exited early:\n%s\n%s", strings.Join(all, "\n"), stderr.String())
			}
			all = append(all, l)
			if m := nodeLine.FindStringSubmatch(l); m != nil {
				urls = append(urls, m[1])
			}
		case <-deadline:
			t.Fatalf("nodes not announced:\n%s", strings.Join(all, "\n"))
		}
	}
	for _, u := range urls {
		resp, err := http.Get(u + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "Cluster: 3 members") {
			t.Fatalf("%s: %d\n%s", u, resp.StatusCode, b)
		}
	}

	// A quiet start: a "node started" line per node, and none of raft's routine warnings.
	logs := stderr.String()
	if n := strings.Count(logs, `msg="node started"`); n != 3 {
		t.Errorf("%d \"node started\" lines, want 3:\n%s", n, logs)
	}
	msg := regexp.MustCompile(`level=WARN msg="([^"]*)`)
	for _, l := range strings.Split(logs, "\n") {
		if m := msg.FindStringSubmatch(l); m != nil && isRoutineRaft(m[1]) {
			t.Errorf("a routine raft warning at start-up: %s", l)
		}
	}

	// -rate 1 over 3 nodes: each node's generator posts a third of a report a second to it.
	statsDeadline := time.Now().Add(2 * time.Minute)
	for _, u := range urls {
		for {
			var st node.Stats
			resp, err := http.Get(u + "/api/stats")
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
			}
			if err == nil && st.GeneratorRate == 1.0/3 && st.Steering.PerNode == 1.0/3 && st.Rates.CollectedTotal > 0 {
				break
			}
			if time.Now().After(statsDeadline) {
				t.Fatalf("%s: the node's generator is not collecting at 1/3 report a second: %+v, %v", u, st, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stopped := 0
	for l := range lines {
		all = append(all, l)
		if strings.HasSuffix(l, " stopped") {
			stopped++
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("launcher: %v\n%s\n%s", err, strings.Join(all, "\n"), stderr.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("launcher did not exit after SIGINT")
	}
	if stopped != 3 {
		t.Errorf("%d nodes reported stopped, want 3:\n%s", stopped, strings.Join(all, "\n"))
	}
	for _, u := range urls {
		if _, err := http.Get(u + "/"); err == nil {
			t.Errorf("%s still serves after the launcher exited", u)
		}
	}
}

// lockedBuffer is a strings.Builder safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
