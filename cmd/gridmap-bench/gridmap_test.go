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

// -op publish: every publish measured is delivered to the subscriber of each of the 3 members.
func TestRunInprocPublish(t *testing.T) {
	r := runJSON(t, runOptions{}, "-members", "3", "-op", "publish", "-concurrency", "4", "-duration", "1s")
	checkResult(t, r, opPublish, 3)
	if r.Errors != 0 || r.DeliveryMissed != 0 {
		t.Fatalf("%d errors, %d missed", r.Errors, r.DeliveryMissed)
	}
	// Every publish counted was made in the measured time: each subscriber received it. (A
	// publish that straddled the deadline is not counted, yet delivered: hence at least.)
	if r.Deliveries < 3*r.Ops || r.DeliveryP99us <= 0 {
		t.Fatalf("%d deliveries of %d publishes to 3 members, p99 %.1fµs", r.Deliveries, r.Ops, r.DeliveryP99us)
	}
}
