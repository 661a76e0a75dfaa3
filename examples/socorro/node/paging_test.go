package node

import (
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/generator"
)

// Nodes with a data folder take crashes well past their memory budget: the dumps are paged out
// to the folders (docs/restart.md, "Maps larger than memory"), so no submission is refused for
// memory, every crash is processed, and its dump reads back byte for byte.
func TestCrashesBeyondTheMemoryBudget(t *testing.T) {
	const budget = 8 << 20
	nodes := startClusterWith(t, 2, func(_ int, c *Config) { c.MemoryBudget = budget })
	base, err := os.ReadFile("../minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	r := mrand.New(mrand.NewPCG(3, 4))
	dumps := map[string][]byte{}
	const crashes = 40 // 1 MiB each: 5 times the two nodes' budgets, twice over with backups
	for i := range crashes {
		rep, err := generator.NewReport(r, base, 1024, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		ct, body, err := generator.Encode(rep, false, false)
		if err != nil {
			t.Fatal(err)
		}
		status, answer := post(t, nodes[i%2].URL(), ct, body, false)
		id, ok := strings.CutPrefix(answer, "CrashID=bp-")
		if status != http.StatusOK || !ok {
			t.Fatalf("crash %d of %d MiB: %d %q", i, crashes, status, answer)
		}
		dumps[id] = rep.Dump
	}
	for id, dump := range dumps {
		page := nodes[0].URL() + "/report/bp-" + id
		waitFor(t, time.Minute, "crash "+id+" is processed", func() bool {
			status, text := get(t, page)
			return status == http.StatusOK && strings.Contains(text, `id="signature"`)
		})
		status, got := get(t, page+"/dump/upload_file_minidump")
		if status != http.StatusOK || got != string(dump) {
			t.Fatalf("dump of %s: %d, %d bytes, want %d bytes as posted", id, status, len(got), len(dump))
		}
	}
}
