package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/generator"
)

// demoCluster is the demo's three node processes on fixed addresses and data folders, as the
// launcher starts them, so that it can be stopped and started again on the same folders.
type demoCluster struct {
	t                    *testing.T
	bin                  string
	dirs, http, gossip   []string
	bind                 []string
	cmds                 []*exec.Cmd
	exited               []chan struct{}
	logs                 []*lockedBuffer
	urls                 []string
	sweepAge, sweepEvery string
	mode                 string
}

// stableAddr returns a free address below the kernel's ephemeral ports (32768 up on Linux), so
// that the restarted nodes find it free again: freeAddr's ports come from the ephemeral range,
// where other tests' nodes and any outgoing connection may take them between two runs.
func stableAddr(t *testing.T) string {
	for range 1000 {
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+mrand.IntN(12000)))
		ln, err := net.Listen("tcp", a)
		if err != nil {
			continue
		}
		ln.Close()
		return a
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

func newDemoCluster(t *testing.T, bin string, n int, mode string) *demoCluster {
	c := &demoCluster{t: t, bin: bin, sweepAge: "10m", sweepEvery: "1s", mode: mode}
	root := t.TempDir()
	for i := range n {
		c.dirs = append(c.dirs, filepath.Join(root, "node"+strconv.Itoa(i)))
		for _, l := range []*[]string{&c.http, &c.gossip, &c.bind} {
			*l = append(*l, stableAddr(t))
		}
	}
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			for i, l := range c.logs {
				t.Logf("node%d log (all runs):\n%s", i, l)
			}
		}
	})
	c.logs = make([]*lockedBuffer, n)
	for i := range c.logs {
		c.logs[i] = &lockedBuffer{}
	}
	return c
}

// start starts every node and waits until all serve.
func (c *demoCluster) start() {
	t := c.t
	n := len(c.dirs)
	c.cmds, c.exited, c.urls = nil, nil, make([]string, n)
	type ready struct {
		i   int
		url string
	}
	readyc := make(chan ready, n)
	for i := range n {
		// A sweep age longer than the test leaves the sweeps' catch-up of the entries from
		// before the node's start as the only way a crash restored unprocessed is processed.
		cmd := exec.Command(c.bin, "node", "-name", "node"+strconv.Itoa(i), "-http", c.http[i], "-gossip", c.gossip[i],
			"-bind", c.bind[i], "-seeds", strings.Join(c.gossip, ","), "-expect", strconv.Itoa(n), "-data", c.dirs[i],
			"-sweep-every", c.sweepEvery, "-sweep-age", c.sweepAge, "-mode", c.mode)
		cmd.Stderr = c.logs[i]
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		c.cmds = append(c.cmds, cmd)
		c.exited = append(c.exited, done)
		go func() { // ends at the process's exit, when its stdout closes
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if u, ok := strings.CutPrefix(sc.Text(), readyPrefix); ok {
					readyc <- ready{i, u}
				}
			}
			_ = cmd.Wait()
			close(done)
		}()
	}
	timeout := time.After(3 * time.Minute)
	for range n {
		select {
		case r := <-readyc:
			c.urls[r.i] = r.url
		case <-timeout:
			t.Fatal("nodes did not start")
		}
	}
}

// stop stops the nodes gracefully one after the other, last first, as the launcher does.
func (c *demoCluster) stop() {
	for i := len(c.cmds) - 1; i >= 0; i-- {
		if err := c.cmds[i].Process.Signal(syscall.SIGTERM); err != nil {
			c.t.Fatal(err)
		}
		c.wait(i)
		if !c.cmds[i].ProcessState.Success() {
			c.t.Fatalf("node%d: %v", i, c.cmds[i].ProcessState)
		}
	}
}

// kill kills every node with SIGKILL at once.
func (c *demoCluster) kill() {
	for _, cmd := range c.cmds {
		_ = cmd.Process.Kill()
	}
	for i := range c.cmds {
		c.wait(i)
	}
}

func (c *demoCluster) wait(i int) {
	select {
	case <-c.exited[i]:
	case <-time.After(2 * time.Minute):
		c.t.Fatalf("node%d did not exit", i)
	}
}

// submit posts n generated reports with real dumps to the nodes and returns the crash IDs they
// answered.
func (c *demoCluster) submit(n int) []string {
	t := c.t
	dumps, err := loadDumps()
	if err != nil {
		t.Fatal(err)
	}
	// Real dumps cut to 20-100 KiB: the test is about what a restart keeps, not about volume.
	sizes, err := generator.NewSizes(generator.Point{P: 0, Size: 20 << 10}, generator.Point{P: 1, Size: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	d, err := generator.New(generator.Config{Targets: c.urls, Dumps: dumps, Rate: 50, DumpSizes: &sizes, Client: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitUntil(t, time.Minute, fmt.Sprintf("%d reports answered", n), func() bool { return d.Stats().Accepted >= uint64(n) })
	cancel()
	<-done
	return d.Answered()
}

var dumpLink = regexp.MustCompile(`/dump/([^"/]+)"`)

// crash returns a crash's report page (the raw crash and processed crash as node0 shows them)
// and each of its dumps, whether it is processed, and false when node0 cannot serve it.
func (c *demoCluster) crash(id string) (page string, dumps map[string]string, processed, ok bool) {
	get := func(path string) (string, bool) {
		resp, err := http.Get(c.urls[0] + path)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err == nil && resp.StatusCode == http.StatusOK
	}
	page, ok = get("/report/bp-" + id)
	if !ok {
		return "", nil, false, false
	}
	dumps = map[string]string{}
	for _, m := range dumpLink.FindAllStringSubmatch(page, -1) {
		b, ok := get("/report/bp-" + id + "/dump/" + m[1])
		if !ok {
			return "", nil, false, false
		}
		dumps[m[1]] = b
	}
	if len(dumps) == 0 {
		c.t.Fatalf("crash %s: no dump links in its page:\n%s", id, page)
	}
	return page, dumps, strings.Contains(page, `id="status">processed`), true
}

type crashView struct {
	page  string
	dumps map[string]string
}

// waitProcessed waits until every crash of ids is served processed and returns what node0 shows.
func (c *demoCluster) waitProcessed(ids []string) map[string]crashView {
	c.t.Helper()
	views := map[string]crashView{}
	last := ""
	c.t.Cleanup(func() {
		if c.t.Failed() && last != "" {
			c.t.Logf("last crash not processed: %s", last)
		}
	})
	waitUntil(c.t, 2*time.Minute, "every answered crash is processed", func() bool {
		for _, id := range ids {
			if _, ok := views[id]; ok {
				continue
			}
			page, dumps, processed, ok := c.crash(id)
			if !ok || !processed {
				last = fmt.Sprintf("%s served %v processed %v", id, ok, processed)
				if resp, err := http.Get(c.urls[0] + "/report/bp-" + id); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					last += fmt.Sprintf(" (%d %.300s)", resp.StatusCode, b)
				}
				return false
			}
			views[id] = crashView{page, dumps}
		}
		return true
	})
	return views
}

// check fails unless every crash of want is served by the restarted cluster byte for byte as
// before.
func (c *demoCluster) check(want map[string]crashView, when string) {
	c.t.Helper()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	got := c.waitProcessed(ids)
	for id, w := range want {
		g := got[id]
		if g.page != w.page {
			c.t.Errorf("%s: crash %s: page differs:\nbefore:\n%s\nafter:\n%s", when, id, w.page, g.page)
		}
		if len(g.dumps) != len(w.dumps) {
			c.t.Errorf("%s: crash %s: %d dumps, want %d", when, id, len(g.dumps), len(w.dumps))
		}
		for name, d := range w.dumps {
			if g.dumps[name] != d {
				c.t.Errorf("%s: crash %s: dump %s differs (%d bytes, want %d)", when, id, name, len(g.dumps[name]), len(d))
			}
		}
	}
}

// The demo's cluster keeps every crash across a full stop and start on its data folders: once
// stopped gracefully, once killed with SIGKILL (every node at once, some crashes answered but
// not processed yet). Each time the restarted cluster serves every report and processed crash
// byte for byte as before, processes the crashes that were waiting (the work was not lost with
// the listeners' events or the work queue), and takes new submissions.
func TestRestartKeepsCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs node processes")
	}
	for _, mode := range []string{"listener", "queue"} {
		t.Run(mode, func(t *testing.T) { testRestartKeepsCrashes(t, mode) })
	}
}

func testRestartKeepsCrashes(t *testing.T, mode string) {
	bin := filepath.Join(t.TempDir(), "socorro")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	step := func(what string) { t.Logf("%v: %s", time.Since(began).Round(100*time.Millisecond), what) }
	c := newDemoCluster(t, bin, 3, mode)
	c.start()
	step("started")
	want := c.waitProcessed(c.submit(10))
	step("10 processed")

	c.stop()
	step("stopped")
	c.start()
	step("started again")
	c.check(want, "after a graceful stop")
	step("checked")
	for id, v := range c.waitProcessed(c.submit(5)) {
		want[id] = v
	}
	step("5 more processed")

	// Answered, maybe not processed yet when the nodes die: the acknowledged writes are in
	// the folders (DataDir persists every replica before the write is answered).
	waiting := c.submit(5)
	c.kill()
	step("killed")
	c.start()
	step("started again")
	c.check(want, "after SIGKILL of every node")
	c.waitProcessed(waiting)
	step("checked")
	c.waitProcessed(c.submit(3))
	step("3 more processed")
}
