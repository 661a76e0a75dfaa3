package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Defaults of the load tool. The workload flags and their defaults match the Olric anchor harness
// (bench/olric) so that the two tools measure the same thing.
const (
	defaultMembers     = 3
	defaultValueSize   = 256
	defaultKeys        = 100000
	defaultConcurrency = 32
	defaultDuration    = 10 * time.Second
	defaultReadPct     = 80
	defaultBackups     = 1
	defaultMaxData     = 1 << 30 // bytes: cap on keys*value-size when -keys is not given
	maxBackups         = 6
)

// Modes of running the members.
const (
	modeInproc = "inproc" // every member in this process
	modeProcs  = "procs"  // one child process (of this binary) per member
)

// Operations.
const (
	opPut   = "put"
	opGet   = "get"
	opMixed = "mixed"
	// opOffer and opTake move items through one queue: every worker offers an item and takes
	// one, in turn, so the queue stays short; the op measured is the Offer (opOffer) or the
	// Take (opTake), the other is done unmeasured.
	opOffer = "offer"
	opTake  = "take"
	// opPublish publishes to one topic with a subscriber on every member (publish.go): the
	// publish latency is measured like a put's, and the delivery latency on every member too.
	opPublish = "publish"
)

// preloads reports whether op reads the map's keys, which the run writes first.
func preloads(op string) bool { return op == opGet || op == opMixed }

// config is the validated command line of one run.
type config struct {
	Members      int           // cluster members (>= 1)
	Mode         string        // modeInproc or modeProcs
	Op           string        // opPut, opGet, opMixed or opPublish
	ReadPct      int           // percentage of gets for opMixed, 0..100
	ValueSize    int           // bytes per value (>= 1)
	Keys         int           // key space size (>= 1), after the -max-data cap
	MaxData      int64         // bytes; caps Keys*ValueSize when -keys was not given
	Concurrency  int           // workers in total, spread round-robin over the members (>= 1)
	Duration     time.Duration // measured time (> 0)
	Warmup       time.Duration // unmeasured time of the same workload before measuring (>= 0)
	Backups      int           // backups per partition, 0..6, at most Members-1
	AsyncBackups bool          // backups are written asynchronously (not waited for)
	TargetOps    float64       // total ops/s over all workers; 0 = as fast as possible
	JSON         bool          // print one JSON line on stdout (the human summary goes to stderr)
	Verbose      bool          // member logs (slog, info level) on stderr
	CPUProfile   string        // file for a CPU profile of the run ("" = none)
	Trace        string        // file for a runtime execution trace of the run ("" = none)
	OpsOut       string        // CSV file listing every measured op ("" = none)
	MemProfile   string        // file for a heap profile taken at the end of the run ("" = none)
	TLS          bool          // members use mutual TLS with certificates made for the run
	TLSDir       string        // folder of gridmap-certs certificates (set by -tls, or given)

	// Set only in a child process of -mode procs (internal flags).
	Child   int    // member index of this child; -1 in the parent or in inproc mode
	Seed    string // gossip address of child 0, for the other children
	Samples string // file where the child writes its latency samples
}

// parseFlags parses and validates args (without the program name). It fills defaults, applies the
// -max-data cap to -keys when -keys is not given, caps -backups to members-1 when -backups is not
// given, and reports every invalid flag in one error. With -h it returns flag.ErrHelp.
func parseFlags(args []string, output io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("gridmap-bench", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.IntVar(&c.Members, "members", defaultMembers, "cluster members")
	fs.StringVar(&c.Mode, "mode", modeInproc, "inproc (all members in this process) | procs (one child process per member)")
	fs.StringVar(&c.Op, "op", opPut, "put | get | mixed | offer | take | publish (offer and take: items through one queue, each worker offering and taking in turn, measuring the one named; publish: to a topic with a subscriber on every member)")
	fs.IntVar(&c.ReadPct, "read-pct", defaultReadPct, "percentage of gets for -op mixed")
	fs.IntVar(&c.ValueSize, "value-size", defaultValueSize, "value size in bytes")
	fs.IntVar(&c.Keys, "keys", defaultKeys, "key space size (capped so keys*value-size <= -max-data unless set explicitly)")
	fs.Int64Var(&c.MaxData, "max-data", defaultMaxData, "cap on keys*value-size in bytes when -keys is not given")
	fs.IntVar(&c.Concurrency, "concurrency", defaultConcurrency, "workers in total, spread round-robin over the members")
	fs.DurationVar(&c.Duration, "duration", defaultDuration, "measured duration")
	fs.DurationVar(&c.Warmup, "warmup", 0, "unmeasured run of the same workload before measuring")
	fs.IntVar(&c.Backups, "backups", defaultBackups, "backups per partition (0..6; default capped at members-1)")
	fs.BoolVar(&c.AsyncBackups, "async-backups", false, "write backups asynchronously (sync_backups is then 0)")
	fs.Float64Var(&c.TargetOps, "target-ops", 0, "total ops/s over all workers (0 = unlimited); an op waiting behind a slow earlier op of its worker is charged the wait, the load tool's own timer lateness is not")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON line on stdout; the human summary goes to stderr")
	fs.BoolVar(&c.Verbose, "v", false, "log member events (info level) to stderr")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run (inproc mode) to this file")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write a heap profile (in-use and allocated space) at the end of the run (inproc mode) to this file")
	fs.StringVar(&c.Trace, "trace", "", "write a runtime execution trace of the whole run (inproc mode) to this file (go tool trace)")
	fs.StringVar(&c.OpsOut, "ops-out", "", "write every measured op to this CSV file, in start order: start (µs into the measurement), latency (µs), worker (inproc mode); shows when the slow ops happened")
	fs.BoolVar(&c.TLS, "tls", false, "members talk mutual TLS 1.3, with a development CA and certificates made for the run (see -tls-dir)")
	fs.StringVar(&c.TLSDir, "tls-dir", "", "with -tls: use the certificates of this folder (gridmap-certs -members N: ca.pem, member-<i>.pem, member-<i>-key.pem) instead of making new ones")
	fs.IntVar(&c.Child, "child", -1, "internal (-mode procs): member index of this child process")
	fs.StringVar(&c.Seed, "seed", "", "internal (-mode procs): gossip address of child 0")
	fs.StringVar(&c.Samples, "samples", "", "internal (-mode procs): file for this child's latency samples")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("gridmap-bench: unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["keys"] && c.ValueSize > 0 && c.MaxData > 0 && int64(c.Keys)*int64(c.ValueSize) > c.MaxData {
		c.Keys = max(1, int(c.MaxData/int64(c.ValueSize)))
	}
	if !set["backups"] && c.Members >= 1 && c.Backups > c.Members-1 {
		c.Backups = c.Members - 1
	}
	return c, c.validate()
}

// validate reports every problem of c in one error (nil if none).
func (c config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Members < 1 {
		bad("-members must be at least 1, got %d", c.Members)
	}
	if c.TLSDir != "" && !c.TLS {
		bad("-tls-dir needs -tls")
	}
	if c.Mode != modeInproc && c.Mode != modeProcs {
		bad("-mode must be %s or %s, got %q", modeInproc, modeProcs, c.Mode)
	}
	if c.Op != opPut && c.Op != opGet && c.Op != opMixed && c.Op != opOffer && c.Op != opTake && c.Op != opPublish {
		bad("-op must be put, get, mixed, offer, take or publish, got %q", c.Op)
	}
	if c.Op == opPublish && c.Mode != modeInproc {
		bad("-op publish needs -mode %s (its delivery latency is measured across the members of one process)", modeInproc)
	}
	if c.Op == opPublish && c.ValueSize < publishStampSize {
		bad("-op publish needs -value-size of at least %d (the message carries its publish time)", publishStampSize)
	}
	if c.ReadPct < 0 || c.ReadPct > 100 {
		bad("-read-pct must be within 0..100, got %d", c.ReadPct)
	}
	if c.ValueSize < 1 {
		bad("-value-size must be at least 1, got %d", c.ValueSize)
	}
	if c.Keys < 1 {
		bad("-keys must be at least 1, got %d", c.Keys)
	}
	if c.MaxData < 1 {
		bad("-max-data must be at least 1, got %d", c.MaxData)
	}
	if c.Concurrency < 1 {
		bad("-concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.Duration <= 0 {
		bad("-duration must be positive, got %v", c.Duration)
	}
	if c.Warmup < 0 {
		bad("-warmup must not be negative, got %v", c.Warmup)
	}
	if c.Backups < 0 || c.Backups > maxBackups {
		bad("-backups must be within 0..%d, got %d", maxBackups, c.Backups)
	} else if c.Members >= 1 && c.Backups > c.Members-1 {
		bad("-backups %d needs at least %d members, got -members %d", c.Backups, c.Backups+1, c.Members)
	}
	if c.OpsOut != "" && c.Mode != modeInproc {
		bad("-ops-out needs -mode %s", modeInproc)
	}
	if c.TargetOps < 0 {
		bad("-target-ops must not be negative, got %v", c.TargetOps)
	}
	if c.Child >= 0 {
		if c.Mode != modeProcs {
			bad("-child is only valid with -mode procs")
		}
		if c.Child >= c.Members {
			bad("-child %d must be below -members %d", c.Child, c.Members)
		}
		if c.Child > 0 && c.Seed == "" {
			bad("-child %d needs -seed", c.Child)
		}
		if c.Samples == "" {
			bad("-child needs -samples")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("gridmap-bench: invalid flags: %w", errors.Join(errs...))
}

// childArgs returns the command line of child i in -mode procs: the parent's workload, explicitly
// (so no default or cap is applied twice), plus the internal flags.
func (c config) childArgs(i int, seed, samples string) []string {
	a := []string{
		"-mode", modeProcs,
		"-members", strconv.Itoa(c.Members),
		"-op", c.Op,
		"-read-pct", strconv.Itoa(c.ReadPct),
		"-value-size", strconv.Itoa(c.ValueSize),
		"-keys", strconv.Itoa(c.Keys),
		"-max-data", strconv.FormatInt(c.MaxData, 10),
		"-concurrency", strconv.Itoa(c.Concurrency),
		"-duration", c.Duration.String(),
		"-warmup", c.Warmup.String(),
		"-backups", strconv.Itoa(c.Backups),
		"-async-backups=" + strconv.FormatBool(c.AsyncBackups),
		"-target-ops", strconv.FormatFloat(c.TargetOps, 'g', -1, 64),
		"-v=" + strconv.FormatBool(c.Verbose),
		"-child", strconv.Itoa(i),
		"-samples", samples,
	}
	if seed != "" {
		a = append(a, "-seed", seed)
	}
	if c.TLS {
		a = append(a, "-tls", "-tls-dir", c.TLSDir)
	}
	return a
}

// workerIDs returns the global indexes of the workers that member i runs: workers are spread
// round-robin over the members, worker w on member w % members.
func (c config) workerIDs(i int) []int {
	var ids []int
	for w := i; w < c.Concurrency; w += c.Members {
		ids = append(ids, w)
	}
	return ids
}

// syncBackups is the number of backups a write waits for.
func (c config) syncBackups() int {
	if c.AsyncBackups {
		return 0
	}
	return c.Backups
}
