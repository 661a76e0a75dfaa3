package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
)

// Per-op output (-ops-out). The summary's percentiles say how many ops were slow, not when: a
// p99 made of a few long stalls (a GC pause, a descheduled thread holding a connection) and one
// made of queueing spread over the whole run call for different fixes. The CSV lets a reader
// bucket the ops by start time and see which it is.

// opsHeader is the first line of the -ops-out file.
const opsHeader = "start_us,latency_us,worker"

// writeOps writes recs to w as CSV, sorted by start (recs is sorted in place).
func writeOps(w io.Writer, recs []opRecord) error {
	slices.SortFunc(recs, func(a, b opRecord) int { return cmp.Compare(a.Start, b.Start) })
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintln(bw, opsHeader)
	for _, r := range recs {
		// A write error sticks in bw and is returned by Flush.
		fmt.Fprintf(bw, "%.1f,%.1f,%d\n", float64(r.Start.Nanoseconds())/1e3, float64(r.Latency.Nanoseconds())/1e3, r.Worker)
	}
	return bw.Flush()
}

// writeOpsFile writes recs to the file at path (see writeOps).
func writeOpsFile(path string, recs []opRecord) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeOps(f, recs); err != nil {
		f.Close()
		return fmt.Errorf("gridmap-bench: -ops-out: %w", err)
	}
	return f.Close()
}
