package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i)*time.Microsecond)
	}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{0.5, 500}, {0.9, 900}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0.0001, 1}} {
		if got := percentileUs(s, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentileUs(nil, 0.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := percentileUs([]time.Duration{1234567}, 0.99); got != 1234.6 {
		t.Errorf("single sample: %v, want 1234.6 (rounded to 0.1 µs)", got)
	}
}

func TestNewResult(t *testing.T) {
	cfg := config{Members: 3, Mode: modeProcs, Op: opGet, ValueSize: 1000, Keys: 10, Concurrency: 4,
		Duration: 2 * time.Second, Warmup: time.Second, Backups: 2, AsyncBackups: true}
	var tl tally
	tl.add(tally{Samples: []time.Duration{3 * time.Millisecond, time.Millisecond}, Ops: 2})
	tl.add(tally{Samples: []time.Duration{2 * time.Millisecond}, Ops: 1, Errors: 1, FirstError: "boom"})
	tl.add(tally{Ops: 0, FirstError: "later"})
	r := newResult(cfg, tl, 1500*time.Millisecond, 250*time.Millisecond)
	want := result{System: "gridmap", Version: version, Op: opGet, ValueSize: 1000, Keys: 10, Concurrency: 4,
		Members: 3, Backups: 0, AsyncBackups: 2, Mode: modeProcs, DurationS: 2, WarmupS: 1, Ops: 3,
		OpsPerSec: 1.5, MBPerSec: 0, P50us: 2000, P90us: 3000, P99us: 3000, P999us: 3000, MaxUs: 3000,
		Errors: 1, FirstError: "boom", StartupMs: 1500, PreloadMs: 250}
	if r != want {
		t.Fatalf("\n got %+v\nwant %+v", r, want)
	}
	var buf bytes.Buffer
	printSummary(&buf, r)
	for _, s := range []string{"1.5 ops/s", "p50 2.00ms", "2 async backup(s)", "first error boom"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("summary lacks %q:\n%s", s, buf.String())
		}
	}
}

// The JSON names must stay those of bench/olric/result.go so the lines compare directly.
func TestResultJSONNames(t *testing.T) {
	b, err := json.Marshal(result{FirstError: "x", AsyncBackups: 1, TargetOps: 1})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	olric := []string{"system", "version", "op", "value_size", "keys", "concurrency", "members", "sync_backups",
		"duration_s", "warmup_s", "ops", "ops_per_sec", "mb_per_sec", "p50_us", "p90_us", "p99_us", "p999_us",
		"max_us", "errors", "first_error", "startup_ms", "preload_ms"}
	want := append(olric, "async_backups", "mode", "target_ops")
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON fields\n got %v\nwant %v", got, want)
	}
}
