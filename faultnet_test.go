package gridmap

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// faultNet is the fault suite's network: the namespaces of testNet (one per host, linked to a
// bridge in a hub namespace) plus the faults a nemesis injects between them. Partitions are
// blackhole routes in the sending host's namespace, so a cut is per direction: blocking a->b
// drops what a sends to b (gossip, raft and map traffic alike) and nothing else, which gives
// one-way loss by itself, and a two-way cut is both directions. Routes need only iproute2 and
// the kernel's routing, which every Linux has. The impairments need more, and minimal kernels
// (the Firecracker VM this suite was written on) lack some of it:
//
//   - A slow link (slow): tc's tbf qdisc on a host's link, a rate limit with a deep queue: what
//     the host sends beyond the rate waits in the queue (up to its latency bound) and is dropped
//     past it. Every kernel with tc has tbf.
//   - Random loss (lose): iptables' statistic match (xt_statistic) in the receiving host's INPUT
//     chain drops a share of what one host sends to another, at random, without the sender
//     knowing (a drop in the sender's OUTPUT chain would hand TCP an error at once); per
//     direction, so one-way loss too. Needs the iptables command (apt-get install iptables);
//     iptables reports whether it works.
//   - Delay with jitter and loss in one qdisc (impair): tc's netem qdisc, absent from minimal
//     kernels ("Error: Specified qdisc kind is unknown."): netem reports whether it is there.
//     tc's own random drop (a u32 filter with action gact "random netrand drop", or police)
//     fails there too: "Error: Failed to load TC action module."
type faultNet struct {
	*testNet

	mu         sync.Mutex
	blocked    map[[2]int]bool // from, to: traffic from host from to host to is dropped
	impaired   map[int]bool    // hosts with a root qdisc (netem, tbf) on their link
	losing     map[int]bool    // hosts with random-drop rules in their INPUT chain
	netemOK    *bool           // probed once
	iptablesOK *bool           // probed once
}

// newFaultNet builds n hosts; it skips the test when the machine cannot (not root, no ip
// command, no namespaces), and fails instead when CI=true, where the suite must run.
func newFaultNet(t *testing.T, n int) *faultNet {
	t.Helper()
	skipped := true
	defer func() {
		if skipped && ciRun() {
			t.Fatal("CI=true: the fault suite must run (root with network namespaces)")
		}
	}()
	tn := newTestNet(t, n)
	skipped = false
	return &faultNet{testNet: tn, blocked: map[[2]int]bool{}, impaired: map[int]bool{}, losing: map[int]bool{}}
}

// uplink links the test's own namespace to the bridge and returns the test's address on it,
// so that servers of the test (a store) are reachable from every host.
func (fn *faultNet) uplink() (string, error) {
	root := "gmr" + strings.TrimPrefix(fn.hub, "gmh")
	addr := fn.prefix + ".254"
	for _, args := range [][]string{
		{"link", "add", root, "type", "veth", "peer", "name", "up0", "netns", fn.hub},
		{"-n", fn.hub, "link", "set", "up0", "master", "br0"},
		{"-n", fn.hub, "link", "set", "up0", "up"},
		{"addr", "add", addr + "/24", "dev", root},
		{"link", "set", root, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return "", err
		}
	}
	return addr, nil // the pair goes with the hub namespace
}

// ciRun reports whether the tests run in CI (CI=true), where a missing facility fails.
func ciRun() bool { return strings.EqualFold(os.Getenv("CI"), "true") }

// host returns the command prefix that runs a program in host i's namespace.
func (fn *faultNet) host(i int) []string { return []string{"ip", "netns", "exec", fn.hosts[i]} }

// block drops the traffic from host from to host to (one direction).
func (fn *faultNet) block(from, to int) error {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if fn.blocked[[2]int{from, to}] {
		return nil
	}
	if err := ipCmd("-n", fn.hosts[from], "route", "add", "blackhole", fn.addrs[to]+"/32"); err != nil {
		return err
	}
	fn.blocked[[2]int{from, to}] = true
	return nil
}

// partition splits the hosts into groups: no traffic crosses between two groups. Hosts not in
// any group are left alone.
func (fn *faultNet) partition(groups ...[]int) error {
	var errs []error
	for gi, g := range groups {
		for gj, h := range groups {
			if gi == gj {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					errs = append(errs, fn.block(a, b))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ring cuts the hosts into a ring where each one reaches only its neighbours within reach
// hops each way: with 5 hosts and reach 1, every host sees itself and two others, a majority
// of 3 of 5, and no two hosts see the same majority.
func (fn *faultNet) ring(reach int) error {
	n := len(fn.hosts)
	var errs []error
	for a := range n {
		for b := range n {
			d := min((a-b+n)%n, (b-a+n)%n)
			if d > reach {
				errs = append(errs, fn.block(a, b))
			}
		}
	}
	return errors.Join(errs...)
}

// netem reports whether the kernel has tc's netem qdisc (probed once, on host 0's link).
func (fn *faultNet) netem() bool {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if fn.netemOK == nil {
		ok := false
		if _, err := exec.LookPath("tc"); err == nil {
			ok = tcCmd(fn.hosts[0], "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms") == nil
			_ = tcCmd(fn.hosts[0], "qdisc", "del", "dev", "eth0", "root")
		}
		fn.netemOK = &ok
	}
	return *fn.netemOK
}

// impair adds netem's delay and loss to what host i sends, e.g. "delay 100ms 50ms loss 5%".
func (fn *faultNet) impair(i int, spec string) error {
	if !fn.netem() {
		return fmt.Errorf("tc netem is not available in this kernel")
	}
	fn.mu.Lock()
	defer fn.mu.Unlock()
	args := append([]string{"qdisc", "replace", "dev", "eth0", "root", "netem"}, strings.Fields(spec)...)
	if err := tcCmd(fn.hosts[i], args...); err != nil {
		return err
	}
	fn.impaired[i] = true
	return nil
}

// iptables reports whether random loss works: the iptables command with the statistic match in
// the hosts' namespaces (probed once, on host 0).
func (fn *faultNet) iptables() bool {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if fn.iptablesOK == nil {
		ok := false
		if _, err := exec.LookPath("iptables"); err == nil {
			rule := []string{"INPUT", "-s", fn.addrs[1], "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP"}
			ok = iptablesCmd(fn.hosts[0], append([]string{"-A"}, rule...)...) == nil
			_ = iptablesCmd(fn.hosts[0], append([]string{"-D"}, rule...)...)
		}
		fn.iptablesOK = &ok
	}
	return *fn.iptablesOK
}

// lose drops, at random, the given share (0 to 1) of what host from sends to host to: the
// receiver's kernel drops it on arrival, so the sender learns of it only by its absence.
func (fn *faultNet) lose(from, to int, share float64) error {
	if !fn.iptables() {
		return fmt.Errorf("random loss needs iptables with the statistic match")
	}
	fn.mu.Lock()
	defer fn.mu.Unlock()
	err := iptablesCmd(fn.hosts[to], "-A", "INPUT", "-s", fn.addrs[from], "-m", "statistic", "--mode", "random",
		"--probability", strconv.FormatFloat(share, 'f', -1, 64), "-j", "DROP")
	if err == nil {
		fn.losing[to] = true
	}
	return err
}

// slow limits what host i sends to rate (tc's units, e.g. "1mbit") with a queue of latency
// (e.g. "400ms"): a busy link delays packets up to latency and drops what overflows it.
func (fn *faultNet) slow(i int, rate, latency string) error {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if err := tcCmd(fn.hosts[i], "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "32kb", "latency", latency); err != nil {
		return err
	}
	fn.impaired[i] = true
	return nil
}

// healAll removes every cut and impairment.
func (fn *faultNet) healAll() error {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	var errs []error
	for _, p := range slices.Collect(maps.Keys(fn.blocked)) {
		err := ipCmd("-n", fn.hosts[p[0]], "route", "del", "blackhole", fn.addrs[p[1]]+"/32")
		if err == nil {
			delete(fn.blocked, p)
		}
		errs = append(errs, err)
	}
	for h := range fn.impaired {
		err := tcCmd(fn.hosts[h], "qdisc", "del", "dev", "eth0", "root")
		if err == nil {
			delete(fn.impaired, h)
		}
		errs = append(errs, err)
	}
	for h := range fn.losing {
		err := iptablesCmd(fn.hosts[h], "-F", "INPUT")
		if err == nil {
			delete(fn.losing, h)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func iptablesCmd(host string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", host, "iptables", "-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func tcCmd(host string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", host, "tc"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
