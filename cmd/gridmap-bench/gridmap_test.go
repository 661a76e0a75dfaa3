package main

import "testing"

// The tool against a real 3-member gridmap cluster in this process, for about a second.
func TestRunInprocGridmap(t *testing.T) {
	r := runJSON(t, runOptions{}, "-members", "3", "-op", "mixed", "-keys", "2000", "-concurrency", "8", "-duration", "1s")
	checkResult(t, r, opMixed, 3)
	if r.Backups != 1 {
		t.Fatalf("sync_backups %d, want 1", r.Backups)
	}
}

// The same over mutual TLS, with certificates the tool makes for the run.
func TestRunInprocGridmapTLS(t *testing.T) {
	r := runJSON(t, runOptions{}, "-members", "3", "-op", "put", "-keys", "2000", "-concurrency", "8", "-duration", "1s", "-tls")
	checkResult(t, r, opPut, 3)
	if !r.TLS {
		t.Fatal("result does not report TLS")
	}
}

// Items through a queue: each op measured is an Offer (or a Take), none fails.
func TestRunInprocGridmapQueue(t *testing.T) {
	for _, op := range []string{opOffer, opTake} {
		r := runJSON(t, runOptions{}, "-members", "3", "-op", op, "-concurrency", "8", "-duration", "1s")
		checkResult(t, r, op, 3)
	}
}
