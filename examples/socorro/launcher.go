package main

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/collector"
)

// The real dumps the nodes' generators build their reports from.
//
//go:embed minidump/testdata/*.dmp
var dumpFS embed.FS

// defaultDataDir is the launcher's -data: a folder under the working directory, where a user who
// ran the demo sees it, rather than a temporary or cache folder the system may clear between
// two runs. Its node<i> folders are the nodes' Config.DataDir.
const defaultDataDir = "socorro-data"

// launcher is the running demo: its node processes (each with a generator the command topic steers).
type launcher struct {
	out   io.Writer
	nodes []*child
}

// child is one node process.
type child struct {
	name  string
	cmd   *exec.Cmd
	url   string        // the pages' base URL, once ready
	ready chan string   // receives the URL the node prints when it serves
	done  chan struct{} // closed when the process has exited
	err   error         // its exit status, once done
}

// defaultKeep is the launcher's -keep: at the default rate of 2 reports a second, with dumps of
// about 4 MB on average kept on two replicas, the nodes' data folders hold about 5 GB.
const defaultKeep = 5 * time.Minute

// runLauncher starts the nodes (their generators at -rate in all), prints their pages' addresses, and on
// SIGINT or SIGTERM stops each node gracefully, one after the other.
func runLauncher(args []string) error {
	fs := flag.NewFlagSet("socorro", flag.ContinueOnError)
	nodes := fs.Int("nodes", 3, "number of node processes")
	port := fs.Int("port", 8080, "HTTP port of the first node; node i listens on port+i, its gossip on port+100+i and its member traffic on port+200+i (0: free ports)")
	rate := fs.Float64("rate", 2, "reports per second the nodes' generators post in all, shared evenly (0: none until a command such as s2 on the command topic)")
	mode := fs.String("mode", "listener", "how crashes reach processors: listener (each node processes the crashes it owns) or queue (collectors offer crash IDs to a distributed queue, any node takes them)")
	data := fs.String("data", defaultDataDir, "folder of the nodes' data folders (node0, node1, ...): kept across runs, so a stopped demo started again finds every crash; remove it to start afresh")
	keep := fs.Duration("keep", defaultKeep, "how long each raw crash (report and dumps) stays after collection; processed crashes stay (0: raw crashes too, and the data folder grows by about 1 GB a minute at -rate 2)")
	memory := fs.Int64("memory", 256<<20, "memory budget of each node's entries, bytes")
	submitBudget := fs.Int64("submit-budget", collector.DefaultMaxInFlightBytes, "report bytes each node's /submit holds at once; beyond it submissions are answered 503 with Retry-After and the generators back off (negative: no limit)")
	logLevel := fs.String("log", "info", "the nodes' log level: debug (their members' routine work too), info, warn or error")
	var stores storeFlags
	stores.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := stores.kinds(); err != nil {
		return err
	}
	if _, err := parseLevel(*logLevel); err != nil {
		return err
	}
	if *nodes < 1 {
		return fmt.Errorf("-nodes %d: need at least one", *nodes)
	}
	dataDir, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()

	l := &launcher{out: os.Stdout}
	nodeArgs := append(stores.args(), "-log", *logLevel, "-memory", strconv.FormatInt(*memory, 10), "-submit-budget", strconv.FormatInt(*submitBudget, 10),
		"-generate", strconv.FormatFloat(*rate/float64(*nodes), 'f', -1, 64), "-mode", *mode, "-keep", keep.String())
	fmt.Fprintf(l.out, "Data: %s (kept when the demo stops; remove it to start afresh)\n", dataDir)
	err = l.start(ctx, *nodes, *port, dataDir, nodeArgs)
	if err == nil {
		for _, c := range l.nodes {
			fmt.Fprintf(l.out, "%s: %s/\n", c.name, c.url)
		}
		fmt.Fprintln(l.out, "Each node generates crash reports against itself; steer them all from any node's page (command topic: s2, l3000, stop).")
		fmt.Fprintln(l.out, "Ctrl-C stops the nodes.")
		<-ctx.Done()
		err = ctx.Err()
	}
	l.stop()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// start starts n node processes and waits until each serves its pages.
// extra are flags passed to every node as they are.
func (l *launcher) start(ctx context.Context, n, port int, dataDir string, extra []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	addrs := func(offset int) ([]string, error) {
		out := make([]string, n)
		for i := range out {
			if port == 0 {
				a, err := freeAddr()
				if err != nil {
					return nil, err
				}
				out[i] = a
			} else {
				out[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port+offset+i))
			}
		}
		return out, nil
	}
	httpAddrs, err := addrs(0)
	if err != nil {
		return err
	}
	gossip, err := addrs(100)
	if err != nil {
		return err
	}
	bind, err := addrs(200)
	if err != nil {
		return err
	}
	for i := range n {
		name := "node" + strconv.Itoa(i)
		cmd := exec.Command(exe, append([]string{"node",
			"-name", name,
			"-http", httpAddrs[i],
			"-gossip", gossip[i],
			"-bind", bind[i],
			"-seeds", strings.Join(gossip, ","),
			"-expect", strconv.Itoa(n),
			"-data", filepath.Join(dataDir, name),
		}, extra...)...)
		cmd.Stderr = os.Stderr
		ownGroup(cmd) // Ctrl-C reaches the launcher only, which stops the nodes in order
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		c := &child{name: name, cmd: cmd, ready: make(chan string, 1), done: make(chan struct{})}
		l.nodes = append(l.nodes, c)
		go func() { // owned by the child: ends when its stdout closes, at its exit
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if url, ok := strings.CutPrefix(sc.Text(), readyPrefix); ok {
					select {
					case c.ready <- url:
					default:
					}
				} else {
					fmt.Fprintln(l.out, sc.Text())
				}
			}
			c.err = cmd.Wait()
			close(c.done)
		}()
	}
	// Every node waits for the others (ExpectMembers), so wait for all of them together.
	for _, c := range l.nodes {
		if err := waitReady(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits until c serves, exits, or ctx ends.
func waitReady(ctx context.Context, c *child) error {
	t := time.NewTimer(2 * time.Minute)
	defer t.Stop()
	select {
	case c.url = <-c.ready:
		return nil
	case <-c.done:
		return fmt.Errorf("%s exited before serving: %v", c.name, c.err)
	case <-t.C:
		return fmt.Errorf("%s did not serve within 2 minutes", c.name)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops the nodes one after the other, last first: each gets SIGTERM, closes gracefully
// (its partitions move to the others, its write-behind drains) and is killed if it has not
// exited within a minute.
func (l *launcher) stop() {
	for i := len(l.nodes) - 1; i >= 0; i-- {
		c := l.nodes[i]
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(time.Minute)
		select {
		case <-c.done:
		case <-t.C:
			fmt.Fprintf(l.out, "%s did not stop within a minute: killing it\n", c.name)
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		t.Stop()
		if c.err != nil {
			fmt.Fprintf(l.out, "%s: %v\n", c.name, c.err)
		} else {
			fmt.Fprintf(l.out, "%s stopped\n", c.name)
		}
	}
}

// loadDumps returns the real minidumps embedded in the binary, which the nodes' generators
// build reports from.
func loadDumps() ([][]byte, error) {
	var dumps [][]byte
	err := fs.WalkDir(dumpFS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := dumpFS.ReadFile(path)
		dumps = append(dumps, b)
		return err
	})
	return dumps, err
}

// freeAddr returns a local address with a port free at the time of the call.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
