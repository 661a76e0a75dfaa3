package gridmap

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNet is a small network of namespaces made for one test: a hub namespace holding a
// bridge, and one namespace per member linked to it by a veth pair. Cutting a member's link
// isolates it for real: gossip, raft and map traffic alike.
type testNet struct {
	t      *testing.T
	hub    string
	hosts  []string // namespace per member
	addrs  []string // the member's IP address
	prefix string
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func newTestNet(t *testing.T, n int) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the ip command (iproute2) is not installed")
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	tn := &testNet{t: t, hub: "gmh" + id, prefix: fmt.Sprintf("10.%d.%d", 200+int(b[0])%50, b[1])}
	t.Cleanup(tn.destroy)
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := ipCmd("netns", "add", tn.hub); err != nil {
		if msg := err.Error(); strings.Contains(msg, "Operation not permitted") || strings.Contains(msg, "Permission denied") {
			// Root without CAP_SYS_ADMIN (some containers): the machine cannot build the network.
			t.Skipf("this machine cannot create network namespaces: %v", err)
		}
		t.Fatal(err)
	}
	must("-n", tn.hub, "link", "add", "br0", "type", "bridge")
	must("-n", tn.hub, "link", "set", "br0", "up")
	for i := range n {
		host := fmt.Sprintf("gm%d%s", i, id)
		tn.hosts = append(tn.hosts, host)
		addr := fmt.Sprintf("%s.%d", tn.prefix, i+1)
		tn.addrs = append(tn.addrs, addr)
		must("netns", "add", host)
		must("-n", host, "link", "set", "lo", "up")
		must("-n", tn.hub, "link", "add", fmt.Sprintf("h%d", i), "type", "veth", "peer", "name", "eth0", "netns", host)
		must("-n", tn.hub, "link", "set", fmt.Sprintf("h%d", i), "master", "br0")
		must("-n", tn.hub, "link", "set", fmt.Sprintf("h%d", i), "up")
		must("-n", host, "addr", "add", addr+"/24", "dev", "eth0")
		must("-n", host, "link", "set", "eth0", "up")
	}
	return tn
}

// cut isolates member i (its link to the hub goes down); heal restores it.
func (tn *testNet) cut(i int) {
	if err := ipCmd("-n", tn.hub, "link", "set", fmt.Sprintf("h%d", i), "down"); err != nil {
		tn.t.Fatal(err)
	}
}

func (tn *testNet) heal(i int) {
	if err := ipCmd("-n", tn.hub, "link", "set", fmt.Sprintf("h%d", i), "up"); err != nil {
		tn.t.Fatal(err)
	}
}

func (tn *testNet) destroy() {
	for _, h := range append(tn.hosts, tn.hub) {
		_ = ipCmd("netns", "del", h)
	}
}

// A member cut off from the raft majority must stop acknowledging writes before the majority
// reassigns its partitions; otherwise writes acknowledged on the isolated side would be silently
// lost. Backups are asynchronous here, so the isolated owner could acknowledge writes on its own
// if its lease did not stop it. When the link comes back, the cluster must become whole again
// without restarts: the isolated member rejoins, drops its stale data, takes partitions again, and
// writes through it land where the other members read them.
func TestNetworkPartitionStopsIsolatedOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("builds network namespaces and starts member processes")
	}
	tn := newTestNet(t, 3)
	gossip := make([]string, 3)
	for i, a := range tn.addrs {
		gossip[i] = a + ":7946"
	}
	children := startChildrenWith(t, gossip,
		func(i int) []string {
			return []string{"GRIDMAP_BIND=" + tn.addrs[i] + ":7000", "GRIDMAP_ASYNC=1", "GRIDMAP_OPTIMEOUT=2s"}
		},
		func(i int) []string { return []string{"ip", "netns", "exec", tn.hosts[i]} })
	waitChildren(t, children, func(s childState) bool { return s.epoch > 0 && s.pending == 0 && s.minReplicas == 2 && s.mem == 3 })

	victim := -1
	for i, c := range children {
		if !c.state().leader {
			victim = i
			break
		}
	}
	x := children[victim]
	var keys []string
	for i := 0; len(keys) < 20; i++ {
		k := fmt.Sprint("split-", i)
		if x.do("owns "+k) == "true" {
			keys = append(keys, k)
		}
	}
	var observer *child
	for i, c := range children {
		if i != victim {
			observer = c
			break
		}
	}

	// The isolated member's client keeps writing to keys its member owns; the test records when
	// each acknowledgement arrived.
	var mu sync.Mutex
	var acks []time.Time
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writerErr error
	wg.Go(func() {
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			got, ok := x.tryDo(fmt.Sprintf("put %s v%d", keys[seq%len(keys)], seq))
			if !ok {
				// t.Fatal is for the test's goroutine: reported after Wait.
				writerErr = fmt.Errorf("child %s stopped answering", x.id)
				return
			}
			if got == "ok" {
				mu.Lock()
				acks = append(acks, time.Now())
				mu.Unlock()
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged before the cut", n)
		}
		time.Sleep(5 * time.Millisecond)
	}

	cutAt := time.Now()
	tn.cut(victim)
	// The majority side commits a table without the isolated member.
	var reassigned time.Time
	deadline = time.Now().Add(60 * time.Second)
	for {
		if s := observer.state(); s.mem == 2 && s.minReplicas >= 1 {
			reassigned = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the majority did not reassign the isolated member's partitions")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Give the isolated side time to (wrongly) acknowledge more writes after the reassignment.
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	if writerErr != nil {
		t.Fatal(writerErr)
	}

	mu.Lock()
	var last time.Time
	for _, a := range acks {
		if a.After(last) {
			last = a
		}
	}
	mu.Unlock()
	t.Logf("cut at +0, last acknowledgement by the isolated member at %v, reassignment seen at %v",
		last.Sub(cutAt).Round(time.Millisecond), reassigned.Sub(cutAt).Round(time.Millisecond))
	if last.After(reassigned) {
		t.Fatalf("the isolated member acknowledged a write %v after the majority reassigned its partitions",
			last.Sub(reassigned))
	}

	// Heal: the member comes back under the same process, and the cluster becomes whole.
	healAt := time.Now()
	tn.heal(victim)
	waitChildren(t, children, func(s childState) bool { return s.pending == 0 && s.minReplicas == 2 && s.mem == 3 })
	t.Logf("healed at +0: all 3 members converged at +%v", time.Since(healAt).Round(time.Millisecond))
	want := map[string]string{}
	for i, k := range keys {
		v := fmt.Sprint("healed", i)
		if got := x.do("put " + k + " " + v); got != "ok" {
			t.Fatalf("put %s through the healed member: %s", k, got)
		}
		want[k] = v
	}
	for i := range 40 {
		k, v := fmt.Sprint("after-heal-", i), fmt.Sprint("a", i)
		if got := x.do("put " + k + " " + v); got != "ok" {
			t.Fatalf("put %s through the healed member: %s", k, got)
		}
		want[k] = v
	}
	for k, v := range want {
		for i, c := range children {
			if got := c.do("get " + k); got != "val "+v {
				t.Fatalf("get %s via member %d (healed: %v) = %q, want %q", k, i, i == victim, got, v)
			}
		}
	}
}
