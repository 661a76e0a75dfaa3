package main

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

const procStat = `cpu  1000 50 400 8000 100 20 30 400 0 0
cpu0 500 25 200 4000 50 10 15 200 0 0
intr 12345
`

func TestParseCPUTimes(t *testing.T) {
	c, err := parseCPUTimes([]byte(procStat))
	if err != nil {
		t.Fatal(err)
	}
	if want := (cpuTimes{busy: 1000 + 50 + 400 + 20 + 30, idle: 8000 + 100, steal: 400}); c != want {
		t.Fatalf("parsed %+v, want %+v", c, want)
	}
	// A kernel without the steal column reads as no steal.
	if c, err := parseCPUTimes([]byte("cpu 1 2 3 4 5\n")); err != nil || c != (cpuTimes{busy: 6, idle: 9}) {
		t.Fatalf("short line: %+v, %v", c, err)
	}
	for _, bad := range []string{"", "intr 1 2\n", "cpu 1 2 x 4 5\n", "cpu0 1 2 3 4 5\n"} {
		if _, err := parseCPUTimes([]byte(bad)); !errors.Is(err, errNoCPULine) {
			t.Errorf("%q: %v, want errNoCPULine", bad, err)
		}
	}
}

func TestCPUShares(t *testing.T) {
	a := cpuTimes{busy: 1000, idle: 1000, steal: 0}
	b := cpuTimes{busy: 1700, idle: 1200, steal: 100} // 1000 ticks: 700 busy, 200 idle, 100 stolen
	busy, steal, ok := cpuShares(a, b)
	if !ok || busy != 70 || steal != 10 {
		t.Fatalf("shares %v%% busy, %v%% stolen, %v; want 70, 10", busy, steal, ok)
	}
	if _, _, ok := cpuShares(b, a); ok {
		t.Fatal("counters that went backwards gave shares")
	}
	if _, _, ok := cpuShares(a, a); ok {
		t.Fatal("an empty window gave shares")
	}
}

// On Linux the window reads real counters: a busy loop shows as busy time.
func TestCPUWindow(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/stat is Linux's")
	}
	w := startCPUWindow()
	if !w.ok {
		t.Fatal("no /proc/stat counters")
	}
	// The counters advance in clock ticks (10 ms): spin until they show the loop, or give up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		for x := time.Now(); time.Since(x) < 20*time.Millisecond; {
		}
		busy, steal, ok := w.end()
		if ok && busy > 0 {
			if busy > 100 || steal < 0 || busy+steal > 100 {
				t.Fatalf("busy %v%%, stolen %v%%", busy, steal)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no busy time seen in 10 s of spinning: %v%%, %v", busy, ok)
		}
	}
}
