package main

import (
	"slices"
	"time"
)

// result is one run, printed as one JSON line. Its fields and their names are those of
// cmd/gridmap-bench -json, so compare.sh reads both systems' lines alike.
type result struct {
	System      string  `json:"system"`
	Version     string  `json:"version"`
	Op          string  `json:"op"`
	ValueSize   int     `json:"value_size"`
	Keys        int     `json:"keys"`
	Concurrency int     `json:"concurrency"`
	Members     int     `json:"members"`
	Backups     int     `json:"sync_backups"`
	DurationS   float64 `json:"duration_s"`
	WarmupS     float64 `json:"warmup_s"`
	Ops         int64   `json:"ops"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	P999us      float64 `json:"p999_us"`
	MaxUs       float64 `json:"max_us"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	TableSize   int64   `json:"table_size"`
	StartupMs   int64   `json:"startup_ms"`
	PreloadMs   int64   `json:"preload_ms"`
}

// latencies are the measured ops' latencies of one run, every op recorded.
type latencies []time.Duration

// percentiles sorts l and sets r's percentile fields from it, in microseconds with one decimal.
func (l latencies) percentiles(r *result) {
	slices.Sort(l)
	r.P50us, r.P90us, r.P99us = l.at(0.50), l.at(0.90), l.at(0.99)
	r.P999us, r.MaxUs = l.at(0.999), l.at(1)
}

// at is the nearest-rank p-quantile of the sorted l (0 when l is empty).
func (l latencies) at(p float64) float64 {
	if len(l) == 0 {
		return 0
	}
	rank := int(p*float64(len(l))+0.5) - 1
	rank = min(max(rank, 0), len(l)-1)
	return tenths(float64(l[rank]) / float64(time.Microsecond))
}

// tenths rounds f to one decimal.
func tenths(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
