// Command olricbench measures Olric v0.5.7, embedded in one process as a cluster of members on
// loopback, on the workloads of cmd/gridmap-bench, and prints one JSON line per run in the same
// fields, so that cmd/gridmap-bench/compare.sh can alternate the two systems and compare them.
// See README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/buraksezer/olric"
)

// olricVersion is the Olric release go.mod requires.
const olricVersion = "v0.5.7"

// startTimeout bounds the cluster's start (members and a balanced routing table).
const startTimeout = 60 * time.Second

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "olricbench:", err)
		os.Exit(1)
	}
}

func run() error {
	op := flag.String("op", "put", "put | get | mixed")
	readPct := flag.Int("read-pct", 80, "percent of gets for -op mixed (as in cmd/gridmap-bench)")
	valueSize := flag.Int("value-size", 256, "bytes per value")
	keys := flag.Int("keys", 100000, "key space (capped to -max-data / value size unless given)")
	maxData := flag.Int64("max-data", 1<<30, "cap on keys * value size when -keys is not given, in bytes")
	concurrency := flag.Int("concurrency", 32, "workers, spread round-robin over the members")
	duration := flag.Duration("duration", 10*time.Second, "measured time")
	warmup := flag.Duration("warmup", 0, "unmeasured time of the same load before it")
	members := flag.Int("members", 3, "cluster members started in this process")
	backups := flag.Int("backups", 1, "synchronous backups per partition")
	basePort := flag.Int("base-port", 0, "Olric ports base..base+members-1, memberlist ports base+100...; 0 picks free ports")
	tableSize := flag.Int64("table-size", 0, "kvstore table size in bytes; 0: Olric's 1 MiB, or 4 * value size "+
		"when a value does not fit in 1 MiB (Olric refuses entries larger than a table)")
	verify := flag.Bool("verify", false, "after the run, print each member's primary and backup entry counts to stderr")
	flag.Parse()

	switch {
	case *op != "put" && *op != "get" && *op != "mixed":
		return fmt.Errorf("unknown -op %q", *op)
	case *valueSize < 1, *concurrency < 1, *members < 1, *duration <= 0:
		return fmt.Errorf("-value-size, -concurrency, -members and -duration must be positive")
	case *backups < 0 || *backups >= *members:
		return fmt.Errorf("-backups %d must be within 0..members-1", *backups)
	}
	keysGiven := false
	flag.Visit(func(f *flag.Flag) { keysGiven = keysGiven || f.Name == "keys" })
	if !keysGiven && int64(*keys)*int64(*valueSize) > *maxData {
		*keys = int(*maxData / int64(*valueSize))
	}
	if *keys < 1 {
		return fmt.Errorf("-keys must be positive")
	}
	if *tableSize == 0 {
		*tableSize = 1 << 20
		if int64(*valueSize)+4096 > *tableSize {
			*tableSize = 4 * int64(*valueSize)
		}
	}

	ctx := context.Background()
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	c, err := startCluster(sctx, clusterSpec{members: *members, backups: *backups, tableSize: *tableSize, basePort: *basePort})
	cancel()
	if err != nil {
		return err
	}
	defer c.shutdown()
	startup := time.Since(t0)

	maps := make([]olric.DMap, len(c.dbs))
	for i, db := range c.dbs {
		if maps[i], err = db.NewEmbeddedClient().NewDMap("bench"); err != nil {
			return fmt.Errorf("member %d: open map: %w", i, err)
		}
	}
	value := make([]byte, *valueSize)
	rand.NewChaCha8([32]byte{1}).Read(value)
	w := workload{op: *op, readPct: *readPct, keys: *keys, value: value, concurrency: *concurrency,
		warmup: *warmup, duration: *duration}

	var preload time.Duration
	if w.op != "put" {
		t := time.Now()
		if err := w.preload(ctx, maps); err != nil {
			return err
		}
		preload = time.Since(t)
	}
	lat, errs, firstErr := w.run(ctx, maps)

	secs := duration.Seconds()
	n := int64(len(lat))
	r := result{
		System: "olric", Version: olricVersion, Op: w.op, ValueSize: *valueSize, Keys: w.keys,
		Concurrency: w.concurrency, Members: *members, Backups: *backups,
		DurationS: secs, WarmupS: warmup.Seconds(), Ops: n,
		OpsPerSec: tenths(float64(n) / secs), MBPerSec: tenths(float64(n) * float64(*valueSize) / secs / 1e6),
		Errors: errs, TableSize: *tableSize, StartupMs: startup.Milliseconds(), PreloadMs: preload.Milliseconds(),
	}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	lat.percentiles(&r)
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	if *verify {
		c.printCounts(ctx)
	}
	return nil
}

// printCounts prints each member's primary and backup entry counts to stderr: with B backups,
// the backups should hold B times the primaries.
func (c *cluster) printCounts(ctx context.Context) {
	for i, db := range c.dbs {
		st, err := db.NewEmbeddedClient().Stats(ctx, c.addrs[i])
		var primaries, backups int
		for _, p := range st.Partitions {
			primaries += p.Length
		}
		for _, p := range st.Backups {
			backups += p.Length
		}
		fmt.Fprintf(os.Stderr, "member %s: primary entries=%d backup entries=%d err=%v\n", c.addrs[i], primaries, backups, err)
	}
}
