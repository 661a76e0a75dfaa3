package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
)

// cpuWindow measures what the machine's CPUs did over a run, from the kernel's counters in
// /proc/stat (Linux): the share of CPU time busy, and the share a hypervisor stole (time the
// VM's CPUs were ready to run but not given a physical CPU). On a shared VM a latency
// percentile at a fixed load means little without them: in one run on the 2-vCPU box the README
// describes, a third of the CPU time was stolen. Machine-wide, so it counts every process,
// and both modes (inproc, procs) can report it.
type cpuWindow struct {
	start cpuTimes
	ok    bool
}

// cpuTimes is the aggregate "cpu" line of /proc/stat, in clock ticks.
type cpuTimes struct {
	busy  uint64 // user, nice, system, irq, softirq (guest time is within user)
	idle  uint64 // idle, iowait
	steal uint64
}

func (c cpuTimes) total() uint64 { return c.busy + c.idle + c.steal }

// errNoCPULine is returned for /proc/stat contents without an aggregate cpu line.
var errNoCPULine = errors.New("gridmap-bench: no cpu line in /proc/stat")

// parseCPUTimes reads the aggregate cpu line of /proc/stat contents.
func parseCPUTimes(stat []byte) (cpuTimes, error) {
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var v [8]uint64 // user nice system idle iowait irq softirq steal; older kernels stop early
		for i := range v {
			if i+1 >= len(f) {
				break
			}
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return cpuTimes{}, errors.Join(errNoCPULine, err)
			}
			v[i] = n
		}
		return cpuTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7]}, nil
	}
	return cpuTimes{}, errNoCPULine
}

// cpuShares returns the percentages of the CPU time between a and b that was busy and stolen.
func cpuShares(a, b cpuTimes) (busyPct, stealPct float64, ok bool) {
	if b.total() <= a.total() || b.busy < a.busy || b.steal < a.steal {
		return 0, 0, false
	}
	d := float64(b.total() - a.total())
	return round1(100 * float64(b.busy-a.busy) / d), round1(100 * float64(b.steal-a.steal) / d), true
}

// startCPUWindow takes the counters at the start of a run; without /proc/stat the window
// reports nothing.
func startCPUWindow() cpuWindow {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuWindow{}
	}
	c, err := parseCPUTimes(b)
	return cpuWindow{start: c, ok: err == nil}
}

// end returns the busy and stolen shares since the start, ok false when unknown.
func (w cpuWindow) end() (busyPct, stealPct float64, ok bool) {
	if !w.ok {
		return 0, 0, false
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	c, err := parseCPUTimes(b)
	if err != nil {
		return 0, 0, false
	}
	return cpuShares(w.start, c)
}
