package node

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/generator"
)

// The command topic steers every node's generator: a command published through one node's
// form reaches all of them, in the topic's order, and their generators run at the rate it sets.
func TestCommandTopicSteersEveryNode(t *testing.T) {
	dump, err := os.ReadFile("../minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	nodes := startClusterWith(t, 3, func(i int, c *Config) { c.Dumps, c.DumpSizes = [][]byte{dump}, smallDumps(t) })
	command := func(via *Node, cmd string) int {
		t.Helper()
		resp, err := http.PostForm(via.URL()+"/command", url.Values{"command": {cmd}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steered := func(what string, want Steering, rate float64) {
		t.Helper()
		waitFor(t, 30*time.Second, what, func() bool {
			for _, nd := range nodes {
				if nd.Steering() != want || nd.GeneratorRate() != rate {
					return false
				}
			}
			return true
		})
	}
	for _, nd := range nodes {
		if nd.GeneratorRate() != 0 {
			t.Fatalf("%s generates %v reports/s before any command", nd.cfg.Name, nd.GeneratorRate())
		}
	}
	if code := command(nodes[1], "s2"); code != http.StatusOK {
		t.Fatalf("s2: status %d", code)
	}
	steered("every node at 2 reports/s after s2", Steering{PerNode: 2}, 2)
	waitFor(t, 30*time.Second, "every node's generator collecting", func() bool {
		for _, nd := range nodes {
			if nd.Rates().CollectedTotal == 0 {
				return false
			}
		}
		return true
	})
	if code := command(nodes[2], "l60"); code != http.StatusOK {
		t.Fatalf("l60: status %d", code)
	}
	steered("every node at a third of 60/min after l60", Steering{PerNode: 2, CapPerMinute: 60}, 1.0/3)
	if code := command(nodes[0], "stop"); code != http.StatusOK {
		t.Fatalf("stop: status %d", code)
	}
	steered("every node stopped", Steering{CapPerMinute: 60}, 0)

	// A command that does not parse is refused and published to no one.
	if code := command(nodes[0], "faster"); code != http.StatusBadRequest {
		t.Fatalf("a bad command: status %d, want 400", code)
	}
	_, page := get(t, nodes[2].URL()+"/")
	if !strings.Contains(page, `id="command-form"`) || !strings.Contains(page, `<span id="generator-rate">0.00</span>`) {
		t.Fatalf("the page shows no command form or the wrong rate:\n%s", page)
	}
}

// smallDumps is a dump size distribution of 20-120 KB: the tests' generators post many reports
// without the design's multi-megabyte dumps, which the race detector makes slow.
func smallDumps(t *testing.T) *generator.Sizes {
	t.Helper()
	s, err := generator.NewSizes(generator.Point{P: 0, Size: 20 << 10}, generator.Point{P: 1, Size: 120 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return &s
}
