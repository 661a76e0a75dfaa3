package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// runJSON runs the tool with args plus -json and returns its result.
func runJSON(t *testing.T, opts runOptions, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "-json"), strings.NewReader(""), &stdout, &stderr, opts); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var r result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("stdout is not one JSON result: %v\n%s", err, stdout.String())
	}
	if strings.Count(stdout.String(), "\n") != 1 {
		t.Fatalf("stdout has more than one line:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "throughput") {
		t.Fatalf("no human summary on stderr:\n%s", stderr.String())
	}
	return r
}

func checkResult(t *testing.T, r result, op string, members int) {
	t.Helper()
	if r.System != "gridmap" || r.Op != op || r.Members != members || r.Ops == 0 || r.OpsPerSec <= 0 {
		t.Fatalf("result %+v", r)
	}
	if r.Errors != 0 {
		t.Fatalf("%d errors, first: %s", r.Errors, r.FirstError)
	}
	if !(r.P50us > 0 && r.P50us <= r.P90us && r.P90us <= r.P99us && r.P99us <= r.P999us && r.P999us <= r.MaxUs) {
		t.Fatalf("percentiles out of order: %+v", r)
	}
}

// The orchestration with in-memory fake members: flags, preload, workers, result.
func TestRunInprocFake(t *testing.T) {
	r := runJSON(t, runOptions{StartMember: startFake}, "-members", "1", "-op", "mixed", "-keys", "500", "-duration", "300ms")
	checkResult(t, r, opMixed, 1)
	if r.Backups != 0 || r.Mode != modeInproc {
		t.Fatalf("result %+v", r)
	}
}

// -mode procs with fake members in child processes (this test binary, see TestMain).
func TestRunProcsFake(t *testing.T) {
	t.Setenv(fakeEnv, "1")
	t.Setenv("GORACE", "atexit_sleep_ms=0") // race-enabled children otherwise linger 1 s at exit
	r := runJSON(t, runOptions{}, "-mode", "procs", "-members", "3", "-concurrency", "5", "-op", "put", "-duration", "500ms")
	checkResult(t, r, opPut, 3)
	// Each fake member has its own data, so gets are tested on one member.
	t0 := time.Now()
	r = runJSON(t, runOptions{}, "-mode", "procs", "-members", "1", "-op", "get", "-keys", "2000", "-duration", "300ms")
	checkResult(t, r, opGet, 1)
	if r.PreloadMs > time.Since(t0).Milliseconds() {
		t.Fatalf("preload_ms %d", r.PreloadMs)
	}
}

func TestRunBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-op", "nope"}, strings.NewReader(""), &stdout, &stderr, runOptions{}); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "-op must be") {
		t.Fatalf("stderr: %s", stderr.String())
	}
}

// -memprofile writes a heap profile (gzipped protobuf) of the run.
func TestRunMemProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heap.pprof")
	r := runJSON(t, runOptions{StartMember: startFake}, "-members", "1", "-op", "put", "-keys", "100", "-duration", "200ms", "-memprofile", path)
	checkResult(t, r, opPut, 1)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("heap profile is not gzipped (%d bytes)", len(b))
	}
}

// The GC window counts the cycles run during it and their longest pause.
func TestGCWindow(t *testing.T) {
	w := startGCWindow()
	runtime.GC()
	runtime.GC()
	cycles, pause := w.end()
	if cycles < 2 || pause <= 0 {
		t.Fatalf("%d cycles, longest pause %v us after two forced collections", cycles, pause)
	}
}
