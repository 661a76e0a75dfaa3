package main

import (
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var l latencies
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		l = append(l, time.Duration(i)*time.Microsecond)
	}
	var r result
	l.percentiles(&r)
	if r.P50us != 500 || r.P90us != 900 || r.P99us != 990 || r.P999us != 999 || r.MaxUs != 1000 {
		t.Fatalf("percentiles of 1..1000us: %+v", r)
	}
	var empty latencies
	if got := empty.at(0.5); got != 0 {
		t.Fatalf("empty: %v", got)
	}
	if got := (latencies{1500 * time.Nanosecond}).at(0.99); got != 1.5 {
		t.Fatalf("one sample: %v", got)
	}
}
