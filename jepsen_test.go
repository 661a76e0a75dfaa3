package gridmap

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/lincheck"
	"github.com/gridmap/gridmap/internal/storetest"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// The combined nemesis of issue 21: five member processes, each in its own network namespace
// (faultnet_test.go), clients on every host, and a nemesis that alternates a faulty phase (one
// fault drawn at random: SIGKILL of a random member or of the raft leader and a fresh member in
// its place, SIGSTOP of a member for longer than failure detection, a majority/minority split,
// the raft leader isolated, a ring where every member sees a different majority, one-way loss,
// slow links (tc tbf), random loss both ways and one-way (iptables statistic), delay and loss
// with tc netem when the kernel has it, the write-behind store down) with a healed phase.
// Workloads: single-key registers (get, put, ReplaceIfSame, delete) checked for
// linearizability with internal/lincheck (porcupine), a set (every acknowledged add present at
// the end), write-behind (after the final flush the store holds every key's last
// acknowledged value), transactions over the co-keyed maps txa and txb (both-or-neither,
// and the last committed value kept), and queues (no acknowledged item lost, duplicates
// counted: jepsen_queue_test.go).
//
// It runs when asked (GRIDMAP_FAULTS=jepsen or -faults.duration): about 30 s of nemesis, 2
// minutes with CI=true; -faults.duration picks any length, for the long run of docs/faults.md:
//
//	go test -race -run TestJepsen -faults.duration 30m -timeout 0 -v .
var (
	faultsDuration = flag.Duration("faults.duration", 0, "TestJepsen: how long the nemesis runs (0: 30s, or 2m with CI=true)")
	faultsFaulty   = flag.Duration("faults.faulty", 0, "TestJepsen: the faulty phase of a cycle (0: 30s, 15s in the short run)")
	faultsHealed   = flag.Duration("faults.healed", 0, "TestJepsen: the healed phase of a cycle (0: 15s, 8s in the short run)")
	faultsOnly     = flag.String("faults.only", "", "TestJepsen: a comma-separated list of the faults to draw from (default: all)")
	faultsDir      = flag.String("faults.dir", "", "TestJepsen: where histories go (default: a new folder in the temporary directory)")
	// The default, 3 voters among 5 members, includes the case of docs/faults.md ("Results"): a
	// 2 | 3 split that leaves two voters on the smaller side keeps raft there.
	faultsVoters = flag.Int("faults.voters", 3, "TestJepsen: Config.MaxVoters of the members (3 or 5)")
)

// jepsenHosts is the number of hosts (one member each at a time); jepsenBackups keeps three
// replicas of every partition, so one fault at a time never loses data.
const (
	jepsenHosts   = 5
	jepsenBackups = 2
)

func TestJepsen(t *testing.T) {
	if testing.Short() {
		t.Skip("builds network namespaces and starts member processes")
	}
	// Opt-in, so that `go test ./...` stays fast; CI runs it with its own line in .ci/run.
	if *faultsDuration == 0 && !faultsMode("jepsen") {
		t.Skip("the combined nemesis runs with -faults.duration D or GRIDMAP_FAULTS=jepsen (2 minutes with CI=true): see docs/faults.md")
	}
	duration, faulty, healed := 30*time.Second, 15*time.Second, 8*time.Second
	if ciRun() {
		duration, faulty, healed = 2*time.Minute, 30*time.Second, 15*time.Second
	}
	if *faultsDuration > 0 {
		duration, faulty, healed = *faultsDuration, 30*time.Second, 15*time.Second
	}
	faulty, healed = cmpOr(*faultsFaulty, faulty), cmpOr(*faultsHealed, healed)

	fn := newFaultNet(t, jepsenHosts)
	seed := faultSeed()
	r := newFaultRun(t, jepsenBackups, seed)
	j := &jepsen{r: r, fn: fn, gen: make([]int, jepsenHosts), stopped: map[*faultMember]bool{},
		killed: map[string]time.Duration{}, stats: map[string]faultStats{}}
	j.dir = *faultsDir
	if j.dir == "" {
		j.dir = filepath.Join(os.TempDir(), fmt.Sprintf("gridmap-jepsen-%d", seed))
	}
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.histDir = j.dir
	// A longer run has longer histories per key: the checker gets a quarter of the run's length
	// (at least its 2 minutes).
	r.checkFor = max(2*time.Minute, duration/4)
	t.Logf("histories go to %s; %v of cycles %v faulty / %v healed; netem: %v; iptables (random loss): %v; raft voters: %d", j.dir, duration, faulty, healed, fn.netem(), fn.iptables(), *faultsVoters)

	up, err := fn.uplink()
	if err != nil {
		t.Fatal(err)
	}
	j.store = memstore.New()
	ln, err := net.Listen("tcp", up+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(storetest.NewServer(j.store))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	j.storeURL = srv.URL
	j.startCluster()
	// 40 keys keep each key's history short enough for the checker when many writes time out
	// (their outcome is open until the end): a partition waiting for cut-off members times out
	// every operation on its keys for the whole faulty phase.
	keys := faultKeys(40)
	stopRegs := sync.OnceFunc(r.runClients(2*jepsenHosts, keys, seed))
	t.Cleanup(stopRegs)
	stopSet := sync.OnceFunc(j.runSet(jepsenHosts))
	t.Cleanup(stopSet)
	stopWB := sync.OnceFunc(j.runWriteBehind(jepsenHosts))
	t.Cleanup(stopWB)
	stopTx := sync.OnceFunc(j.runTx(jepsenHosts))
	t.Cleanup(stopTx)
	stopQueue := sync.OnceFunc(j.runQueue(jepsenHosts))
	t.Cleanup(stopQueue)

	end := r.now() + duration
	for cycle := 1; r.now() < end; cycle++ {
		f := j.pickFault()
		if f == nemKill || f == nemKillLeader || f == nemPause {
			// A member that dies or stalls takes its replicas with it: with B backups the design
			// promises survival of B failures at once, not of one more before repair is done, so a
			// destructive fault waits until the cluster is safe again (the network faults do not).
			if !j.waitSafe(r.settle) {
				// A liveness failure (reported already, at the heal, unless the cluster became
				// unsafe since); killing now would lose data by design and blur what follows, so
				// the cycle cuts the network instead.
				t.Errorf("cycle %d: the cluster is not safe %v before a destructive fault (seed %d, histories in %s)", cycle, r.settle, seed, j.dir)
				f = nemSplit
			}
		}
		j.cycle = cycle
		j.inject(f, faulty)
		j.heal()
		j.logf("cycle %d: healed", cycle)
		// Liveness: the cluster must be safe again within healBound of every heal. The healed
		// phase lasts its length, or longer while the cluster converges.
		healedAt := time.Now()
		stopTrace := j.traceHeal(healedAt)
		safe := j.waitSafe(healBound)
		stopTrace()
		h := healTime{Cycle: cycle, Safe: safe, Seconds: time.Since(healedAt).Seconds()}
		j.mu.Lock()
		h.Fault = j.faults[len(j.faults)-1]
		j.heals = append(j.heals, h)
		j.mu.Unlock()
		if safe {
			j.logf("cycle %d: safe %.1fs after the heal", cycle, h.Seconds)
		} else {
			t.Errorf("cycle %d: the cluster is not safe %v after the heal of %s (seed %d, histories in %s)", cycle, healBound, h.Fault, seed, j.dir)
		}
		j.readStats()
		pause(healed - time.Since(healedAt))
	}
	stopRegs()
	stopSet()
	stopWB()
	stopTx()
	stopQueue()
	j.heal()
	if !j.waitSafe(r.settle) {
		t.Errorf("the cluster is not safe %v after the last heal", r.settle)
	}
	j.readStats()

	// Verdicts: the registers' final reads agree, their histories are linearizable, and every
	// acknowledged add of the set is present.
	reads := r.finalReads(keys)
	disagree := 0
	for _, k := range keys {
		got := reads[k]
		ok := len(got) > 0 && (strings.HasPrefix(got[0], "value ") || got[0] == "not found")
		for _, g := range got {
			ok = ok && g == got[0]
		}
		if !ok {
			disagree++
			t.Errorf("key %s: final reads through the %d members disagree or fail: %q", k, len(got), got)
		}
	}
	stale := r.check()
	lost, reportedLost, wrong, unknownPresent := j.checkSet()
	wbKeys, wbBad := j.checkWriteBehind()
	txKeys, txBad := j.checkTx()
	qv, qUndrained := j.checkQueue()
	r.mu.Lock()
	nops := len(r.ops)
	r.mu.Unlock()
	j.mu.Lock()
	acked, unknown := len(j.setAcked), len(j.setUnknown)
	txAcked, txUnknown := 0, 0
	for _, ws := range j.tx {
		for _, w := range ws {
			if w.Acked {
				txAcked++
			} else {
				txUnknown++
			}
		}
	}
	qh := *j.queue
	j.mu.Unlock()
	j.mu.Lock()
	heals := slices.Clone(j.heals)
	j.mu.Unlock()
	demotions := j.demotions()
	summary := fmt.Sprintf("JEPSEN seed %d: %v, %d faults %v; %s; %s; %s; registers: %d operations on %d keys, %d not linearizable %v, %d final reads disagree; "+
		"set: %d adds acknowledged, %d unknown (%d of them present), lost silently %d, lost and reported (ErrPartitionLost) %d, wrong value or unreadable %d; write-behind: %d keys, %d stored without their last value; "+
		"transactions: %d committed, %d unknown on %d keys, %d torn or lost; "+
		"queue: %d takes (%d empty, %d failed, %d unanswered, %d outcome unknown), %v, %d queues not drained",
		seed, r.now().Round(time.Second), len(j.faults), j.faults, healSummary(heals), suspicionSummary(demotions), j.copySummary(), nops, len(keys), len(stale), stale, disagree,
		acked, unknown, unknownPresent, len(lost), len(reportedLost), len(wrong), wbKeys, len(wbBad),
		txAcked, txUnknown, txKeys, len(txBad),
		qh.TakesOK+qh.TakesEmpty+qh.TakesFailed+qh.Unanswered+qh.TakesUnknown, qh.TakesEmpty, qh.TakesFailed, qh.Unanswered, qh.TakesUnknown, qv, len(qUndrained))
	summary += "; " + qh.giveBackSummary()
	t.Log(summary)
	j.write("summary.txt", []byte(summary+"\n"))
	verdicts := fmt.Sprintf("set, lost silently (%d):\n%s\nset, lost and reported (%d):\n%s\nset, wrong or unreadable (%d):\n%s\nwrite-behind, bad (%d):\n%s\ntransactions, torn or lost (%d):\n%s\n"+
		"queue, lost (%d):\n%s\nqueue, duplicated (%d):\n%s\nqueue, never offered (%d):\n%s\nqueue, not drained (%d):\n%s\n",
		len(lost), strings.Join(lost, "\n"), len(reportedLost), strings.Join(reportedLost, "\n"),
		len(wrong), strings.Join(wrong, "\n"), len(wbBad), strings.Join(wbBad, "\n"), len(txBad), strings.Join(txBad, "\n"),
		len(qv.Lost), strings.Join(qv.Lost, "\n"), len(qv.Duplicated), strings.Join(qv.Duplicated, "\n"),
		len(qv.NeverOffered), strings.Join(qv.NeverOffered, "\n"), len(qUndrained), strings.Join(qUndrained, "\n"))
	j.write("verdicts.txt", []byte(verdicts))
	sus, _ := json.MarshalIndent(demotions, "", " ")
	j.write("suspicions.json", sus)
	j.writeHistories()
	if len(stale) > 0 {
		t.Errorf("histories of keys %v are not linearizable (seed %d, histories in %s)", stale, seed, j.dir)
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged set adds lost silently, e.g. %v (seed %d, histories in %s)", len(lost), firstN(lost, 10), seed, j.dir)
	}
	if len(reportedLost) > 0 {
		t.Errorf("%d acknowledged set adds in partitions reported lost, e.g. %v (seed %d, histories in %s)", len(reportedLost), firstN(reportedLost, 10), seed, j.dir)
	}
	if len(wbBad) > 0 {
		t.Errorf("write-behind: %d keys not stored with their last acknowledged value after the final flush, e.g. %v (seed %d)", len(wbBad), firstN(wbBad, 10), seed)
	}
	if len(txBad) > 0 {
		t.Errorf("transactions: %d keys torn (txa and txb differ) or without their last committed value, e.g. %v (seed %d)", len(txBad), firstN(txBad, 10), seed)
	}
	if qv.failed(&qh) {
		t.Errorf("queue: %d acknowledged items lost (%d takes unanswered, %d outcome unknown, %d excused by the members' give-backs), e.g. %v; %d items taken that were never offered, e.g. %v (seed %d, histories in %s)",
			len(qv.Lost), qh.Unanswered, qh.TakesUnknown, qh.GiveBacks.Lost+qh.GiveBacks.Unknown, firstN(qv.Lost, 10), len(qv.NeverOffered), firstN(qv.NeverOffered, 10), seed, j.dir)
	}
	if len(qUndrained) > 0 {
		t.Errorf("queue: not drained at the end: %v", qUndrained)
	}
	if len(wrong) > 0 {
		t.Errorf("%d set keys read back with another value than the one written, or unreadable: e.g. %v", len(wrong), firstN(wrong, 10))
	}
}

// jepsen is one combined-nemesis run: a faultRun (members, register clients, history) on a
// faultNet, plus the set workload and the nemesis' log.
type jepsen struct {
	r     *faultRun
	fn    *faultNet
	dir   string
	gen   []int // per host: members started there so far (each gets fresh ports)
	cycle int   // the nemesis' current cycle

	mu       sync.Mutex
	stopped  map[*faultMember]bool // SIGSTOPped, to SIGCONT at the heal
	faults   []string
	log      []string
	setAcked map[string]string // set workload: key -> value, acknowledged
	// wb is the write-behind workload: per key (one client each), the values written in order
	// and whether each was acknowledged.
	wb         map[string][]wbWrite
	store      *memstore.Store
	storeURL   string
	setUnknown map[string]string // errored adds: may or may not be there
	// tx is the transaction workload: per key (one client each), the values written to both
	// txa and txb in one transaction, in order, and whether each commit was acknowledged;
	// txTorn lists the transactions that read different values in the two maps.
	tx     map[string][]wbWrite
	txTorn []string
	// queue is the queue workload's history (jepsen_queue_test.go).
	queue *queueHistory
	// heals records, per cycle, how long the cluster took to be safe again after the heal.
	heals []healTime
	// windows are the faults' times and the pairs of members they impaired; killed is when
	// each killed member was killed (jepsen_suspicion_test.go).
	windows []faultWindow
	killed  map[string]time.Duration
	// stats holds each member's copy figures as last read (after each heal and at the end).
	stats map[string]faultStats
}

// healBound is how long after a heal the cluster may take to be safe again (Cluster.WaitSafe
// on every live member: every partition has its owner and backups, none pending or lost, raft
// has its voters): a run fails when a heal takes longer (docs/faults.md, "Liveness").
const healBound = 60 * time.Second

// healTime is one heal's time to safety, written to heals.json.
type healTime struct {
	Cycle   int     `json:"cycle"`
	Fault   string  `json:"fault"`
	Safe    bool    `json:"safe"`    // safe within healBound
	Seconds float64 `json:"seconds"` // from the heal until every live member found the cluster safe (healBound when not)
}

// healSummary is the summary's liveness part: each heal's time to safety, the slowest, and how
// many heals did not converge within healBound.
func healSummary(hs []healTime) string {
	if len(hs) == 0 {
		return "heals: none"
	}
	times := make([]string, len(hs))
	slowest, late := 0.0, 0
	for i, h := range hs {
		times[i] = fmt.Sprintf("%.1fs", h.Seconds)
		if !h.Safe {
			times[i] = fmt.Sprintf(">%v", healBound)
			late++
		}
		slowest = max(slowest, h.Seconds)
	}
	return fmt.Sprintf("heals: safe after [%s], slowest %.1fs, %d not safe within %v", strings.Join(times, " "), slowest, late, healBound)
}

func (j *jepsen) logf(format string, args ...any) {
	line := fmt.Sprintf("%v: ", j.r.now().Round(time.Millisecond)) + fmt.Sprintf(format, args...)
	j.r.t.Log(line)
	j.mu.Lock()
	j.log = append(j.log, line)
	j.mu.Unlock()
}

// place returns where the next member of host h runs: its namespace, fresh ports.
func (j *jepsen) place(h int) faultPlacementSpec {
	g := j.gen[h]
	j.gen[h]++
	a := j.fn.addrs[h]
	return faultPlacementSpec{host: h, gossip: fmt.Sprintf("%s:%d", a, 7946+10*g), bind: fmt.Sprintf("%s:%d", a, 7000+10*g), wrap: j.fn.host(h)}
}

// startCluster starts one member per host; they found the cluster together.
func (j *jepsen) startCluster() {
	r := j.r
	places := make([]faultPlacementSpec, jepsenHosts)
	for h := range places {
		places[h] = j.place(h)
	}
	for h := range places {
		places[h].env = j.memberEnv()
	}
	ms := startFaultMembersOn(r.t, places, nil, r.backups, r.now)
	r.mu.Lock()
	r.slots = append(r.slots, ms...)
	r.members = append(r.members, ms...)
	r.mu.Unlock()
	r.waitSettled()
}

// memberEnv is the environment of the run's members: the write-behind store, the voters.
func (j *jepsen) memberEnv() []string {
	return []string{storeURLEnv + "=" + j.storeURL, faultVotersEnv + "=" + strconv.Itoa(*faultsVoters)}
}

// startFresh starts a member with a fresh identity and ports on host h, seeded with the live
// members, in the first empty client slot.
func (j *jepsen) startFresh(h int) *faultMember {
	r := j.r
	var seeds []string
	for _, m := range r.live() {
		seeds = append(seeds, m.gossip)
	}
	p := j.place(h)
	p.env = j.memberEnv()
	fm := startFaultMembersOn(r.t, []faultPlacementSpec{p}, seeds, r.backups, r.now)[0]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.members = append(r.members, fm)
	for i, s := range r.slots {
		if s == nil {
			r.slots[i] = fm
			return fm
		}
	}
	r.slots = append(r.slots, fm)
	return fm
}

// The faults of the combined nemesis.
const (
	nemKill          = "kill"
	nemKillLeader    = "kill-leader"
	nemPause         = "pause"
	nemSplit         = "split"
	nemIsolateLeader = "isolate-leader"
	nemRing          = "ring"
	nemOneWay        = "one-way"
	nemNetem         = "delay-loss"
	nemStoreDown     = "store-down"
	nemSlow          = "slow"
	nemLossy         = "lossy"
	nemLossyOneWay   = "lossy-one-way"
)

func (j *jepsen) pickFault() string {
	fs := []string{nemKill, nemKillLeader, nemPause, nemSplit, nemIsolateLeader, nemRing, nemOneWay, nemStoreDown, nemSlow}
	if j.fn.netem() {
		fs = append(fs, nemNetem)
	}
	if j.fn.iptables() {
		fs = append(fs, nemLossy, nemLossyOneWay)
	}
	if *faultsOnly != "" {
		fs = slices.DeleteFunc(fs, func(f string) bool { return !slices.Contains(strings.Split(*faultsOnly, ","), f) })
		if len(fs) == 0 {
			j.r.t.Fatalf("-faults.only %q names no fault this machine can inject", *faultsOnly)
		}
	}
	return fs[j.r.rng.IntN(len(fs))]
}

// inject applies fault f, logs it and keeps it for the faulty phase; the heal undoes what is
// left of it (cuts, impairments, stopped processes).
func (j *jepsen) inject(f string, faulty time.Duration) {
	r := j.r
	started := time.Now()
	rest := func() { pause(max(0, faulty-time.Since(started))) }
	must := func(err error) {
		if err != nil {
			r.t.Fatal(err)
		}
	}
	leader := r.leader()
	live := r.live()
	other := func(not *faultMember) *faultMember {
		var c []*faultMember
		for _, m := range live {
			if m != not {
				c = append(c, m)
			}
		}
		return c[r.rng.IntN(len(c))]
	}
	from := r.now()
	var victim *faultMember // the member the fault is about, if one
	var minority []int      // split, isolate-leader: the cut-off hosts
	defer func() {
		j.mu.Lock()
		j.windows = append(j.windows, faultWindow{From: from, To: r.now(), Fault: f, cuts: cutsFor(f, victim, minority, 1, jepsenHosts)})
		j.mu.Unlock()
	}()
	switch f {
	case nemKill, nemKillLeader:
		v := leader
		if f == nemKill {
			v = other(leader)
		}
		victim = v
		j.mu.Lock()
		j.killed[v.id] = r.now()
		j.mu.Unlock()
		j.record(fmt.Sprintf("%s: SIGKILL %s on host %d (leader %v), a fresh member there 2 s later", f, v.id[:8], v.host, v == leader))
		j.noteKilledGiveBacks(v)
		r.kill(v == leader, v)
		pause(2 * time.Second)
		fm := j.startFresh(v.host)
		j.logf("fresh member %s on host %d", fm.id[:8], fm.host)
		rest()
	case nemPause:
		v := live[r.rng.IntN(len(live))]
		victim = v
		j.record(fmt.Sprintf("%s: SIGSTOP %s on host %d (leader %v) for %v", f, v.id[:8], v.host, v == leader, faulty))
		if err := v.cmd.Process.Signal(syscall.SIGSTOP); err == nil {
			j.mu.Lock()
			j.stopped[v] = true
			j.mu.Unlock()
		}
		rest()
	case nemSplit:
		hosts := r.rng.Perm(jepsenHosts)
		var majority []int
		minority, majority = hosts[:2], hosts[2:]
		j.record(fmt.Sprintf("%s: hosts %v | %v", f, minority, majority))
		must(j.fn.partition(minority, majority))
		rest()
	case nemIsolateLeader:
		var others []int
		for h := range jepsenHosts {
			if h != leader.host {
				others = append(others, h)
			}
		}
		minority = []int{leader.host}
		j.record(fmt.Sprintf("%s: host %d (%s) | %v", f, leader.host, leader.id[:8], others))
		must(j.fn.partition([]int{leader.host}, others))
		rest()
	case nemRing:
		j.record(fmt.Sprintf("%s: every host reaches only its two ring neighbours", f))
		must(j.fn.ring(1))
		rest()
	case nemOneWay:
		v := live[r.rng.IntN(len(live))]
		victim = v
		j.record(fmt.Sprintf("%s: what host %d (%s, leader %v) sends is dropped; it still hears the others", f, v.host, v.id[:8], v == leader))
		for h := range jepsenHosts {
			if h != v.host {
				must(j.fn.block(v.host, h))
			}
		}
		rest()
	case nemStoreDown:
		j.record(fmt.Sprintf("%s: the write-behind store refuses every call", f))
		j.store.Down()
		rest()
	case nemSlow:
		j.record(fmt.Sprintf("%s: every host sends at most 1 mbit/s, queueing up to 400 ms (tc tbf), dropping the overflow", f))
		for h := range jepsenHosts {
			must(j.fn.slow(h, "1mbit", "400ms"))
		}
		rest()
	case nemLossy:
		j.record(fmt.Sprintf("%s: every link loses 5%% of its packets at random, each way (iptables statistic)", f))
		for a := range jepsenHosts {
			for b := range jepsenHosts {
				if a != b {
					must(j.fn.lose(a, b, 0.05))
				}
			}
		}
		rest()
	case nemLossyOneWay:
		v := live[r.rng.IntN(len(live))]
		victim = v
		j.record(fmt.Sprintf("%s: the others lose 30%% of what host %d (%s, leader %v) sends, at random; it hears them fine", f, v.host, v.id[:8], v == leader))
		for h := range jepsenHosts {
			if h != v.host {
				must(j.fn.lose(v.host, h, 0.3))
			}
		}
		rest()
	case nemNetem:
		j.record(fmt.Sprintf("%s: every link delays 50 ms +- 40 ms and loses 5%%", f))
		for h := range jepsenHosts {
			must(j.fn.impair(h, "delay 50ms 40ms loss 5%"))
		}
		rest()
	}
}

func (j *jepsen) record(desc string) {
	j.logf("cycle %d: fault %s", j.cycle, desc)
	j.mu.Lock()
	j.faults = append(j.faults, desc)
	j.mu.Unlock()
}

// heal removes every cut and impairment and resumes the stopped members.
func (j *jepsen) heal() {
	if err := j.fn.healAll(); err != nil {
		j.r.t.Fatal(err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for m := range j.stopped {
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
		delete(j.stopped, m)
	}
	j.store.Up()
}

// waitSafe waits up to d for every live member to find the cluster safe (Cluster.WaitSafe)
// and reports whether they all did; it does not fail the test, since a healed phase may be too
// short for a whole repair; the end of the run waits longer and fails.
func (j *jepsen) waitSafe(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for _, m := range j.r.live() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		rep, err := m.call(faultRequest{Op: "safe", Timeout: left}, left+5*time.Second)
		if err != nil || !rep.OK {
			j.logf("member %s on host %d: not safe yet (%v %s)", m.id[:8], m.host, err, rep.Err)
			j.logViews()
			pause(time.Until(deadline))
			return false
		}
	}
	return true
}

// logViews logs how every live member sees the cluster: its members (alive, voter, leader)
// and a summary of the partition table.
func (j *jepsen) logViews() {
	for _, m := range j.r.live() {
		v, err := m.info()
		if err != nil {
			j.logf("  member %s on host %d: no view: %v", m.id[:8], m.host, err)
			continue
		}
		var ms []string
		for _, vm := range v.Members {
			f := vm.ID[:8]
			if !vm.Alive {
				f += " dead"
			}
			if vm.Voter {
				f += " voter"
			}
			if vm.Leader {
				f += " leader"
			}
			ms = append(ms, f)
		}
		j.logf("  member %s on host %d sees [%s]; %s", m.id[:8], m.host, strings.Join(ms, ", "), v.Parts)
	}
}

// runSet runs n clients, each adding unique keys (with their own value) through the member of
// its slot; the returned function stops them.
func (j *jepsen) runSet(n int) (stop func()) {
	j.mu.Lock()
	j.setAcked, j.setUnknown = map[string]string{}, map[string]string{}
	j.mu.Unlock()
	return j.runPaced(n, 20*time.Millisecond, func(c, i int) faultRequest {
		return faultRequest{Op: "put", Key: fmt.Sprintf("set.%d.%d", c, i), Value: fmt.Sprintf("v%d.%d", c, i)}
	}, func(req faultRequest, _ faultReply, err error) {
		if err == nil {
			j.setAcked[req.Key] = req.Value
		} else {
			j.setUnknown[req.Key] = req.Value
		}
	})
}

// runPaced runs n clients of a workload, client c pinned to the member of slot c (another live
// one while the slot is empty), each sending one request every pace: next(c, i) is client c's
// i-th request (its Timeout defaults to the run's operation timeout). record is called under
// j.mu with the request, the reply and the operation's error: nil when acknowledged,
// errFaultNoAnswer when the member never answered (it may have run it), else the member's
// error; a request the member never got is not recorded. The returned function stops the
// clients and waits for them.
func (j *jepsen) runPaced(n int, pace time.Duration, next func(c, i int) faultRequest, record func(req faultRequest, rep faultReply, err error)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for c := range n {
		wg.Go(func() {
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				m := j.r.memberFor(c)
				if m == nil {
					continue
				}
				req := next(c, i)
				req.Timeout = cmpOr(req.Timeout, j.r.opTimeout)
				rep, err := m.call(req, req.Timeout+30*time.Second)
				if errors.Is(err, errFaultNotSent) {
					continue
				}
				if err == nil && rep.Err != "" {
					err = errors.New(rep.Err)
				}
				j.mu.Lock()
				record(req, rep, err)
				j.mu.Unlock()
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

// checkSet reads every key the set workload added through live members (retrying errors
// until the settle time is up) and returns the acknowledged keys that are absent, those whose
// partition is reported lost (dmap.ErrPartitionLost), the keys read with another value or not
// readable, and how many unacknowledged adds are present.
func (j *jepsen) checkSet() (lost, reportedLost, wrong []string, unknownPresent int) {
	r := j.r
	j.mu.Lock()
	keys := map[string]string{}
	acked := map[string]bool{}
	for k, v := range j.setUnknown {
		keys[k] = v
	}
	for k, v := range j.setAcked {
		keys[k], acked[k] = v, true
	}
	j.mu.Unlock()
	deadline := time.Now().Add(r.settle)
	live := r.live()
	i := 0
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		for {
			m := live[i%len(live)]
			i++
			rep, err := m.call(faultRequest{Op: "get", Key: k, Timeout: r.opTimeout}, r.opTimeout+30*time.Second)
			failed := err != nil || rep.Err != ""
			if failed && !rep.Lost && time.Now().Before(deadline) {
				continue
			}
			switch {
			case rep.Lost && acked[k]:
				reportedLost = append(reportedLost, k)
			case rep.Lost:
			case failed:
				wrong = append(wrong, fmt.Sprintf("%s (read failed: %v %s)", k, err, rep.Err))
			case !rep.OK && acked[k]:
				lost = append(lost, k)
			case rep.OK && rep.Value != keys[k]:
				wrong = append(wrong, fmt.Sprintf("%s=%q, wrote %q", k, rep.Value, keys[k]))
			case rep.OK && !acked[k]:
				unknownPresent++
			}
			break
		}
	}
	return lost, reportedLost, wrong, unknownPresent
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

func (j *jepsen) write(name string, b []byte) {
	if err := os.WriteFile(filepath.Join(j.dir, name), b, 0o644); err != nil {
		j.r.t.Errorf("writing %s: %v", name, err)
	}
}

// writeHistories writes the register history (one JSON operation a line, times in
// nanoseconds on the run's clock), the set's adds and the nemesis' log.
func (j *jepsen) writeHistories() {
	r := j.r
	r.mu.Lock()
	ops := slices.Clone(r.ops)
	r.mu.Unlock()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, o := range ops {
		_ = enc.Encode(o)
	}
	j.write("registers.jsonl", []byte(b.String()))
	j.mu.Lock()
	set, _ := json.MarshalIndent(map[string]any{"acknowledged": j.setAcked, "unknown": j.setUnknown}, "", " ")
	nemesis := strings.Join(j.log, "\n") + "\n"
	heals, _ := json.MarshalIndent(j.heals, "", " ")
	var q []byte
	if j.queue != nil {
		q, _ = json.MarshalIndent(j.queue, "", " ")
	}
	j.mu.Unlock()
	if q != nil {
		j.write("queue.json", q)
	}
	j.write("set.json", set)
	j.write("nemesis.log", []byte(nemesis))
	j.write("heals.json", heals)
}

// lincheckOpsFromFile reads a registers.jsonl history back, to check it again.
func lincheckOpsFromFile(path string) ([]lincheck.Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []lincheck.Op
	dec := json.NewDecoder(f)
	for dec.More() {
		var o lincheck.Op
		if err := dec.Decode(&o); err != nil {
			return nil, err
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// The checker must be able to fail, on the very format a run writes: a history with a stale
// read, written as registers.jsonl and read back, is a violation, and the same history
// without the stale read is linearizable.
func TestJepsenCheckerFindsStaleRead(t *testing.T) {
	ms := time.Millisecond
	history := []lincheck.Op{
		{Client: 0, Key: "k", Kind: lincheck.Put, Value: "a", Call: 0, Return: 1 * ms},
		{Client: 0, Key: "k", Kind: lincheck.Put, Value: "b", Call: 2 * ms, Return: 3 * ms},
		{Client: 1, Key: "k", Kind: lincheck.Get, Call: 4 * ms, Return: 5 * ms, OK: true, Got: "b"},
		{Client: 2, Key: "k", Kind: lincheck.Get, Call: 6 * ms, Return: 7 * ms, OK: true, Got: "a"}, // stale
		{Client: 3, Key: "k", Kind: lincheck.Put, Value: "c", Call: 8 * ms, Err: true, Return: 9 * ms},
	}
	j := &jepsen{r: &faultRun{t: t, ops: history}, dir: t.TempDir()}
	j.writeHistories()
	read, err := lincheckOpsFromFile(filepath.Join(j.dir, "registers.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(read, history) {
		t.Fatalf("history read back differs:\n%v\n%v", read, history)
	}
	if res := lincheck.Check(read, time.Minute); len(res) != 1 || res[0].Result != "Illegal" {
		t.Fatalf("a stale read passed the checker: %+v", res)
	}
	fresh := slices.Delete(slices.Clone(read), 3, 4)
	if res := lincheck.Check(fresh, time.Minute); len(res) != 1 || res[0].Result != "Ok" {
		t.Fatalf("the history without the stale read: %+v, want Ok", res)
	}
}

// wbWrite is one write of the write-behind workload.
type wbWrite struct {
	Value string
	Acked bool
}

// runWriteBehind runs n clients writing to the write-behind map, each to 20 keys of its own,
// values in increasing order; the returned function stops them.
func (j *jepsen) runWriteBehind(n int) (stop func()) {
	j.mu.Lock()
	j.wb = map[string][]wbWrite{}
	j.mu.Unlock()
	return j.runPaced(n, 25*time.Millisecond, func(c, i int) faultRequest {
		return faultRequest{Op: "wput", Key: fmt.Sprintf("wb.%d.%d", c, i%20), Value: fmt.Sprintf("v%d.%d", c, i)}
	}, func(req faultRequest, _ faultReply, err error) {
		j.wb[req.Key] = append(j.wb[req.Key], wbWrite{Value: req.Value, Acked: err == nil})
	})
}

// checkWriteBehind flushes every live member (retrying until the settle time is up) and then
// checks the store: a key with an acknowledged write holds its last acknowledged value or a
// value written after it whose outcome is unknown. It returns the number of keys and the bad ones.
func (j *jepsen) checkWriteBehind() (keys int, bad []string) {
	r := j.r
	deadline := time.Now().Add(r.settle)
	for _, m := range r.live() {
		for {
			rep, err := m.call(faultRequest{Op: "wflush", Timeout: r.opTimeout}, r.opTimeout+30*time.Second)
			if err == nil && rep.OK {
				break
			}
			if time.Now().After(deadline) {
				bad = append(bad, fmt.Sprintf("member %s: flush failed: %v %s", m.id[:8], err, rep.Err))
				break
			}
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for k, ws := range j.wb {
		last := -1
		for i, w := range ws {
			if w.Acked {
				last = i
			}
		}
		if last < 0 {
			continue
		}
		keys++
		got, ok := j.store.Get([]byte(k))
		fine := false
		for _, w := range ws[last:] {
			fine = fine || (ok && string(got) == w.Value)
		}
		if !fine {
			bad = append(bad, fmt.Sprintf("%s: stored %q (present %v), last acknowledged %q", k, got, ok, ws[last].Value))
		}
	}
	slices.Sort(bad)
	return keys, bad
}

// runTx runs n clients of the transaction workload, each on 10 keys of its own: a transaction
// reads the key in the co-keyed maps txa and txb (they must agree: both-or-neither) and writes
// a new value to both. The returned function stops them.
func (j *jepsen) runTx(n int) (stop func()) {
	j.mu.Lock()
	j.tx = map[string][]wbWrite{}
	j.mu.Unlock()
	return j.runPaced(n, 25*time.Millisecond, func(c, i int) faultRequest {
		return faultRequest{Op: "tx", Key: fmt.Sprintf("tx.%d.%d", c, i%10), Value: fmt.Sprintf("v%d.%d", c, i)}
	}, func(req faultRequest, rep faultReply, err error) {
		j.tx[req.Key] = append(j.tx[req.Key], wbWrite{Value: req.Value, Acked: err == nil})
		if err == nil && rep.Value != rep.Other {
			j.txTorn = append(j.txTorn, fmt.Sprintf("%s: a transaction read txa=%q txb=%q", req.Key, rep.Value, rep.Other))
		}
	})
}

// checkTx reads every key of the transaction workload in both maps, in one transaction,
// through the live members (retrying errors until the settle time is up): both maps must hold
// the same value, and that value must be the key's last acknowledged one or a value written
// after it whose outcome is unknown (absent only when no write was acknowledged). It returns
// the number of keys with an acknowledged write and the bad keys, with the torn reads seen
// during the run.
func (j *jepsen) checkTx() (keys int, bad []string) {
	r := j.r
	j.mu.Lock()
	writes := maps.Clone(j.tx)
	bad = slices.Clone(j.txTorn)
	j.mu.Unlock()
	deadline := time.Now().Add(r.settle)
	live := r.live()
	i := 0
	for _, k := range slices.Sorted(maps.Keys(writes)) {
		ws := writes[k]
		last := -1
		for n, w := range ws {
			if w.Acked {
				last = n
			}
		}
		if last >= 0 {
			keys++
		}
		var rep faultReply
		var err error
		for {
			m := live[i%len(live)]
			i++
			rep, err = m.call(faultRequest{Op: "txget", Key: k, Timeout: r.opTimeout}, r.opTimeout+30*time.Second)
			if (err == nil && rep.Err == "") || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || rep.Err != "" {
			bad = append(bad, fmt.Sprintf("%s: unreadable: %v %s", k, err, rep.Err))
			continue
		}
		if rep.Value != rep.Other {
			bad = append(bad, fmt.Sprintf("%s: torn: txa=%q txb=%q", k, rep.Value, rep.Other))
			continue
		}
		fine := last < 0 && rep.Value == ""
		for _, w := range ws[max(last, 0):] {
			fine = fine || rep.Value == w.Value
		}
		if !fine {
			want := "nothing acknowledged"
			if last >= 0 {
				want = fmt.Sprintf("last acknowledged %q", ws[last].Value)
			}
			bad = append(bad, fmt.Sprintf("%s: both maps hold %q, %s", k, rep.Value, want))
		}
	}
	return keys, bad
}
