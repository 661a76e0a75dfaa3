package hbase

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// The integration tests run against a real HBase whose master address is in
// GRIDMAP_HBASE_ADDR (".ci/hbase.sh start" starts one and ".ci/hbase.sh addr" prints it). Without
// it they skip, except in CI (CI=true), where a missing server fails them.
const addrEnv = "GRIDMAP_HBASE_ADDR"

func serverAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(addrEnv)
	missing := func(why string) {
		t.Helper()
		msg := fmt.Sprintf("no HBase server: %s (start one with .ci/hbase.sh start and set %s=$(.ci/hbase.sh addr))", why, addrEnv)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if addr == "" {
		missing(addrEnv + " is not set")
	}
	nc, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		missing(fmt.Sprintf("%s unreachable: %v", addr, err))
	}
	nc.Close()
	return addr
}

var inFlightMB = flag.Int64("hbase.inflight-mb", 0, "Config.MaxInFlightBytes of the test clients, in MiB (0: the default): to compare throughputs, or to see a server run out of memory without the bound")

// testClient returns a client of the test server; GRIDMAP_HBASE_DEBUG=1 logs its retries.
func testClient(t testing.TB) *Client {
	t.Helper()
	cfg := Config{Addrs: []string{serverAddr(t)}, MaxInFlightBytes: *inFlightMB << 20}
	if os.Getenv("GRIDMAP_HBASE_DEBUG") == "1" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var tableSeq atomic.Int64

// testTable creates a fresh table with family "f", split at splits, and deletes it when the
// test ends.
func testTable(t testing.TB, c *Client, splits ...[]byte) string {
	t.Helper()
	name := fmt.Sprintf("gridmap_test_%d_%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.CreateTableWith(ctx, name, TableOptions{SplitKeys: splits}, "f"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.DeleteTable(ctx, name); err != nil {
			t.Logf("delete table %s: %v", name, err)
		}
	})
	return name
}
