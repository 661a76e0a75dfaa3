package hbase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	c := testClient(t)
	table := testTable(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, found, err := c.Get(ctx, table, []byte("a"), "f"); err != nil || found {
		t.Fatalf("get missing row: found %v, err %v", found, err)
	}
	if err := c.Apply(ctx, table, Mutation{Row: []byte("a"), Family: "f", Columns: []Column{{Qualifier: []byte("q"), Value: []byte("v1")}}}); err != nil {
		t.Fatal(err)
	}
	row, found, err := c.Get(ctx, table, []byte("a"), "f")
	if err != nil || !found {
		t.Fatalf("get: found %v, err %v", found, err)
	}
	if v, ok := row.Value("f", "q"); !ok || !bytes.Equal(v, []byte("v1")) {
		t.Fatalf("value %q %v", v, ok)
	}
	if err := c.Apply(ctx, table, Mutation{Row: []byte("a"), Delete: true}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := c.Get(ctx, table, []byte("a"), "f"); err != nil || found {
		t.Fatalf("get deleted row: found %v, err %v", found, err)
	}
}

func rowKey(i int) []byte { return fmt.Appendf(nil, "row%06d", i) }

func putOf(i int, v []byte) Mutation {
	return Mutation{Row: rowKey(i), Family: "f", Columns: []Column{{Qualifier: []byte("q"), Value: v}}}
}

// TestBatch writes, reads and deletes 1,000 rows in single Multi batches, once with requests
// split by MaxRequestBytes.
func TestBatch(t *testing.T) {
	c := testClient(t)
	table := testTable(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 1000
	ms := make([]Mutation, n)
	rows := make([][]byte, n)
	for i := range n {
		ms[i] = putOf(i, fmt.Appendf(nil, "value %d", i))
		rows[i] = rowKey(i)
	}
	if err := c.ApplyAll(ctx, table, ms); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetMany(ctx, table, append(rows, []byte("missing")), "f")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if v, ok := got[i].Value("f", "q"); !ok || string(v) != fmt.Sprintf("value %d", i) {
			t.Fatalf("row %d: %q %v", i, v, ok)
		}
	}
	if len(got[n].Cells) != 0 {
		t.Fatalf("missing row has cells: %v", got[n])
	}

	// The same through requests of at most ~4 KB: many Multi calls in flight at once.
	small, err := NewClient(Config{Addrs: c.cfg.Addrs, MaxRequestBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	for i := range n {
		ms[i] = putOf(i, fmt.Appendf(nil, "second %d", i))
	}
	if err := small.ApplyAll(ctx, table, ms); err != nil {
		t.Fatal(err)
	}
	got, err = small.GetMany(ctx, table, rows, "f")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if v, _ := got[i].Value("f", "q"); string(v) != fmt.Sprintf("second %d", i) {
			t.Fatalf("row %d: %q", i, v)
		}
	}

	dels := make([]Mutation, n)
	for i := range n {
		dels[i] = Mutation{Row: rowKey(i), Delete: true}
	}
	if err := c.ApplyAll(ctx, table, dels); err != nil {
		t.Fatal(err)
	}
	// Deleting again is not an error (the mapstore contract wants idempotent deletes).
	if err := c.ApplyAll(ctx, table, dels); err != nil {
		t.Fatal(err)
	}
	got, err = c.GetMany(ctx, table, rows, "f")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if len(got[i].Cells) != 0 {
			t.Fatalf("row %d still there", i)
		}
	}
}

// TestScan writes 10,000 rows into a table of three regions and scans: every row once, in
// order, while the middle region splits under the open scanner (the scan reopens after its last
// row); a prefix scan; a keys-only scan without values; a scan stopped by its callback.
func TestScan(t *testing.T) {
	var logBuf syncBuffer
	c, err := NewClient(Config{Addrs: []string{serverAddr(t)}, Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	table := testTable(t, c, rowKey(3000), rowKey(7000))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 10000
	ms := make([]Mutation, 0, 1000)
	for i := range n {
		ms = append(ms, putOf(i, fmt.Appendf(nil, "v%d", i)))
		if len(ms) == cap(ms) {
			if err := c.ApplyAll(ctx, table, ms); err != nil {
				t.Fatal(err)
			}
			ms = ms[:0]
		}
	}
	i := 0
	err = c.Scan(ctx, table, ScanOptions{Caching: 500}, func(r Row) error {
		if !bytes.Equal(r.Key, rowKey(i)) {
			return fmt.Errorf("row %d is %q", i, r.Key)
		}
		if v, _ := r.Value("f", "q"); string(v) != fmt.Sprintf("v%d", i) {
			return fmt.Errorf("row %d value %q", i, v)
		}
		i++
		if i == 4000 {
			// The region [3000, 7000) is being scanned, its scanner open: split it.
			return c.SplitRegion(ctx, table, rowKey(5000))
		}
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("scanned %d rows, err %v", i, err)
	}
	if !strings.Contains(logBuf.String(), "op=Scan") {
		t.Fatalf("the split did not make the scan reopen its region; log:\n%s", logBuf.String())
	}
	// "row0029" covers rows 2900-2999; "row007" rows 7000-7999 (after a split point).
	for _, tc := range []struct {
		prefix string
		want   int
	}{{"row0029", 100}, {"row007", 1000}, {"row1", 0}} {
		count := 0
		err := c.Scan(ctx, table, ScanOptions{Prefix: []byte(tc.prefix), KeysOnly: true}, func(r Row) error {
			if !bytes.HasPrefix(r.Key, []byte(tc.prefix)) {
				return fmt.Errorf("row %q outside the prefix", r.Key)
			}
			if v, ok := r.Value("f", "q"); !ok || len(v) != 0 {
				return fmt.Errorf("keys-only scan returned value %q", v)
			}
			count++
			return nil
		})
		if err != nil || count != tc.want {
			t.Fatalf("prefix %q: %d rows, want %d, err %v", tc.prefix, count, tc.want, err)
		}
	}
	stop := errors.New("stop")
	count := 0
	err = c.Scan(ctx, table, ScanOptions{Start: rowKey(2990), Stop: rowKey(3010)}, func(Row) error {
		count++
		if count == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || count != 5 {
		t.Fatalf("stopped scan: %d rows, err %v", count, err)
	}
}

// TestSplitDuringWrites splits the table's region while batches are written: the client finds
// the daughters through hbase:meta and every write lands.
func TestSplitDuringWrites(t *testing.T) {
	c := testClient(t)
	table := testTable(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n, batch = 6000, 200
	splitDone := make(chan error, 1)
	go func() {
		// Split once writes are going.
		for c.regions.lookup(table, rowKey(0)) == nil {
			time.Sleep(time.Millisecond)
		}
		splitDone <- c.SplitRegion(ctx, table, rowKey(n/2))
	}()
	var splitErr error
	split := false
	for i := 0; i < n; i += batch {
		ms := make([]Mutation, 0, batch)
		for j := i; j < i+batch; j++ {
			ms = append(ms, putOf(j, fmt.Appendf(nil, "v%d", j)))
		}
		if err := c.ApplyAll(ctx, table, ms); err != nil {
			t.Fatalf("batch at %d: %v", i, err)
		}
		select {
		case splitErr = <-splitDone:
			split = true
		default:
		}
	}
	if !split {
		splitErr = <-splitDone
	}
	if splitErr != nil {
		t.Fatal(splitErr)
	}
	// After the split, the parent region's cached location answers NotServingRegion: the
	// reads below go through re-location.
	rows := make([][]byte, n)
	for i := range n {
		rows[i] = rowKey(i)
	}
	got, err := c.GetMany(ctx, table, rows, "f")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if v, _ := got[i].Value("f", "q"); string(v) != fmt.Sprintf("v%d", i) {
			t.Fatalf("row %d: %q", i, v)
		}
	}
	lo, hi := c.regions.lookup(table, rowKey(0)), c.regions.lookup(table, rowKey(n-1))
	if lo == nil || hi == nil || lo == hi {
		t.Fatalf("after the split the cache holds %v and %v, want two daughters", lo, hi)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a log handler's).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
