package main

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsDefaults(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Members: 3, Mode: modeInproc, Op: opPut, ReadPct: 80, ValueSize: 256, Keys: 100000,
		MaxData: 1 << 30, Concurrency: 32, Duration: 10 * time.Second, Backups: 1, Child: -1,
	}
	if c != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestParseFlagsCaps(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		keys, backups int
	}{
		{[]string{"-value-size", "1048576"}, 1024, 1},                  // 1 GiB / 1 MiB
		{[]string{"-value-size", "1048576", "-keys", "5000"}, 5000, 1}, // explicit: not capped
		{[]string{"-value-size", "1000", "-max-data", "10000"}, 10, 1},
		{[]string{"-value-size", "4096", "-max-data", "100"}, 1, 1}, // at least one key
		{[]string{"-members", "1"}, 100000, 0},                      // default backups capped
		{[]string{"-members", "5", "-backups", "4"}, 100000, 4},
	} {
		c, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if c.Keys != tc.keys || c.Backups != tc.backups {
			t.Errorf("%v: keys %d backups %d, want %d %d", tc.args, c.Keys, c.Backups, tc.keys, tc.backups)
		}
	}
}

func TestParseFlagsInvalid(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // every substring must be in the one error
	}{
		{[]string{"-op", "scan"}, []string{"-op"}},
		{[]string{"-mode", "k8s"}, []string{"-mode"}},
		{[]string{"-members", "0", "-concurrency", "0", "-read-pct", "101"}, []string{"-members", "-concurrency", "-read-pct"}},
		{[]string{"-value-size", "0", "-keys", "0", "-duration", "0s", "-warmup", "-1s"}, []string{"-value-size", "-keys", "-duration", "-warmup"}},
		{[]string{"-members", "2", "-backups", "2"}, []string{"-backups 2 needs at least 3 members"}},
		{[]string{"-members", "9", "-backups", "7"}, []string{"0..6"}},
		{[]string{"-target-ops", "-5"}, []string{"-target-ops"}},
		{[]string{"-child", "1"}, []string{"-mode procs", "-seed", "-samples"}},
		{[]string{"-mode", "procs", "-child", "3", "-samples", "x"}, []string{"below -members"}},
		{[]string{"extra"}, []string{"unexpected arguments"}},
		{[]string{"-mode", "procs", "-ops-out", "ops.csv"}, []string{"-ops-out needs -mode inproc"}},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil {
			t.Errorf("%v: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", tc.args, err, w)
			}
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestChildArgsRoundTrip(t *testing.T) {
	parent, err := parseFlags([]string{"-mode", "procs", "-members", "4", "-op", "mixed", "-read-pct", "60",
		"-value-size", "1048576", "-concurrency", "7", "-duration", "1500ms", "-warmup", "2s", "-backups", "2",
		"-async-backups", "-target-ops", "123.5", "-v", "-tls", "-tls-dir", "/tmp/certs"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	child, err := parseFlags(parent.childArgs(2, "127.0.0.1:7946", "/tmp/s2"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := parent
	want.Child, want.Seed, want.Samples = 2, "127.0.0.1:7946", "/tmp/s2"
	if !reflect.DeepEqual(child, want) {
		t.Fatalf("child config:\n got %+v\nwant %+v", child, want)
	}
	if child.Keys != 1024 {
		t.Fatalf("keys %d, want the parent's capped 1024", child.Keys)
	}
}

func TestWorkerIDs(t *testing.T) {
	c := config{Members: 3, Concurrency: 7}
	got := [][]int{c.workerIDs(0), c.workerIDs(1), c.workerIDs(2)}
	want := [][]int{{0, 3, 6}, {1, 4}, {2, 5}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if ids := (config{Members: 4, Concurrency: 2}).workerIDs(3); len(ids) != 0 {
		t.Fatalf("member without workers got %v", ids)
	}
}

func TestPublishFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-op", "publish", "-mode", "procs"},
		{"-op", "publish", "-value-size", "7"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parseFlags([]string{"-op", "publish", "-value-size", "4096"}, io.Discard); err != nil {
		t.Errorf("-op publish: %v", err)
	}
}
