package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
)

// startMember starts a single gridmap member whose map "crashes" writes behind into st.
func startMember(t testing.TB, st mapstore.Store, pc mapstore.Config) *gridmap.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := gridmap.Start(ctx, gridmap.Config{PartitionCount: 71, Timings: gridmap.LocalTimings(),
		Logger: slog.New(slog.DiscardHandler), Maps: map[string]dmap.MapConfig{"crashes": {Store: st, Persistence: pc}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = m.Close(ctx)
	})
	return m
}

// loadAll returns every key of keys the store holds, with its value.
func loadAll(t testing.TB, ctx context.Context, s *Store, keys [][]byte) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	if err := s.LoadAll(ctx, keys, func(k, v []byte) error { got[string(k)] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func countKeys(t testing.TB, ctx context.Context, s *Store) int {
	t.Helper()
	n := 0
	if err := s.LoadAllKeys(ctx, func([]byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBatch10000 stores, replaces, loads and deletes 10,000 documents in single calls, which
// the Store splits into bulk requests of BulkBytes sent four at a time.
func TestBatch10000(t *testing.T) {
	s, _ := newStore(t, func(c *Config) { c.BulkBytes = 1 << 20 })
	ctx := ctxT(t, 3*time.Minute)
	const n = 10_000
	pad := strings.Repeat("x", 900)
	keys := make([][]byte, n)
	for r := range 2 {
		values := make([][]byte, n)
		for i := range n {
			keys[i] = fmt.Appendf(nil, "doc-%05d", i)
			values[i] = fmt.Appendf(nil, `{"i":%d,"round":%d,"pad":%q}`, i, r, pad)
		}
		if err := s.StoreAll(ctx, keys, values); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		got := loadAll(t, ctx, s, keys)
		if len(got) != n {
			t.Fatalf("round %d: LoadAll found %d of %d", r, len(got), n)
		}
		for i, k := range keys {
			if !bytes.Equal(got[string(k)], values[i]) {
				t.Fatalf("round %d: %s = %.60q, want %.60q", r, k, got[string(k)], values[i])
			}
		}
		if c := countKeys(t, ctx, s); c != n {
			t.Fatalf("round %d: LoadAllKeys listed %d keys, want %d", r, c, n)
		}
	}
	if err := s.DeleteAll(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if c := countKeys(t, ctx, s); c != 0 {
		t.Fatalf("LoadAllKeys listed %d keys after DeleteAll", c)
	}
}

// TestMappingRefused: a document the mapping refuses is reported as rejected, the rest of the
// call is stored; through a write-behind map it is counted in the map's persistence stats, not
// retried, and the queue drains.
func TestMappingRefused(t *testing.T) {
	s, _ := newStore(t, func(c *Config) {
		c.Mappings = []byte(`{"dynamic":false,"properties":{"n":{"type":"integer"}}}`)
	})
	ctx := ctxT(t, 2*time.Minute)
	keys, values := [][]byte{}, [][]byte{}
	for i := range 50 {
		keys = append(keys, fmt.Appendf(nil, "k%02d", i))
		v := fmt.Appendf(nil, `{"n":%d}`, i)
		if i == 17 {
			v = []byte(`{"n":"seventeen"}`)
		}
		values = append(values, v)
	}
	err := s.StoreAll(ctx, keys, values)
	rej := mapstore.Rejected(err)
	if rej == nil || len(rej.Keys) != 1 || string(rej.Keys[0]) != "k17" || !strings.Contains(err.Error(), "HTTP 400: document_parsing_exception") {
		t.Fatalf("StoreAll: %v, want k17 rejected with a document_parsing_exception", err)
	}
	got := loadAll(t, ctx, s, keys)
	if _, ok := got["k17"]; ok || len(got) != 49 {
		t.Fatalf("stored %d documents (k17 among them: %v), want the 49 others", len(got), ok)
	}

	// The same through a write-behind map.
	m := startMember(t, s, mapstore.Config{WriteDelay: 20 * time.Millisecond})
	mp, err := gridmap.GetMap[string, []byte](m, "crashes")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		v := fmt.Appendf(nil, `{"n":%d}`, 1000+i)
		if i == 123 {
			v = []byte(`{"n":"one hundred twenty-three"}`)
		}
		if err := mp.Put(ctx, fmt.Sprintf("w%03d", i), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := mp.Flush(ctx); err != nil {
		t.Fatalf("Flush with a refused document: %v", err)
	}
	ps := m.Maps().PersistenceStats("crashes")
	if ps.Rejected != 1 || !errors.Is(ps.LastRejected, mapstore.ErrRejected) || !strings.Contains(ps.LastRejected.Error(), "w123") || ps.DirtyEntries != 0 {
		t.Fatalf("persistence stats: %d rejected (last: %v), %d dirty; want w123 rejected, none dirty", ps.Rejected, ps.LastRejected, ps.DirtyEntries)
	}
	var wkeys [][]byte
	for i := range 200 {
		wkeys = append(wkeys, fmt.Appendf(nil, "w%03d", i))
	}
	if got := loadAll(t, ctx, s, wkeys); len(got) != 199 || got["w123"] != nil {
		t.Fatalf("stored %d documents of 200, want 199 (all but w123)", len(got))
	}
	if v, err := mp.Get(ctx, "w123"); err != nil || string(v) != `{"n":"one hundred twenty-three"}` {
		t.Fatalf("the map lost the refused entry: %q, %v", v, err)
	}
}

// TestWeeklyIndices stores crashes of three weeks in one index a week (Socorro's pattern), with
// the dump left out of the documents, then loads, lists, searches, counts and deletes them.
func TestWeeklyIndices(t *testing.T) {
	var base string
	s, _ := newStore(t, func(c *Config) {
		base = c.Index
		c.Index += "-%Y%W"
		c.KeyTime = crashTime
		crashConfig(c)
	})
	ctx := ctxT(t, 2*time.Minute)
	r := rand.New(rand.NewPCG(1, 2))
	days := []time.Time{time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
	var keys, values [][]byte
	crashes := map[string][]byte{}
	for i := range 300 {
		day := days[i%3]
		id := crashID(r, day)
		crash := processedCrash(r, id, day, 1000+r.IntN(3000))
		keys, values = append(keys, []byte(id)), append(values, envelope(crash, bytes.Repeat([]byte{0xde, 0xad}, 500)))
		crashes[id] = crash
	}
	if err := s.StoreAll(ctx, keys, values); err != nil {
		t.Fatal(err)
	}
	// Week numbers as strftime's %W: 2 November 2026 is a Monday, in week 44.
	for i, want := range []string{base + "-202644", base + "-202645", base + "-202646"} {
		if idx, err := s.IndexOf([]byte(crashID(r, days[i]))); idx != want || err != nil {
			t.Fatalf("IndexOf a crash of %v = %s, %v; want %s", days[i], idx, err, want)
		}
	}
	got := loadAll(t, ctx, s, keys)
	for id, crash := range crashes {
		c, dump, err := openEnvelope(got[id])
		if err != nil || !bytes.Equal(c, crash) || len(dump) != 0 {
			t.Fatalf("Load %s: %d bytes of crash (want %d), %d of dump (want none: left out), %v", id, len(c), len(crash), len(dump), err)
		}
	}
	if n := countKeys(t, ctx, s); n != 300 {
		t.Fatalf("LoadAllKeys over three weekly indices listed %d keys, want 300", n)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Every index of the pattern holds its week's crashes.
	weeks := map[string]int{}
	hits, total, err := s.Find(ctx, Query{Size: 300})
	if err != nil || total != 300 || len(hits) != 300 {
		t.Fatalf("Find all: %d hits of %d, %v", len(hits), total, err)
	}
	for _, h := range hits {
		weeks[h.Index]++
		if bytes.Contains(h.Source, []byte("dump")) && !bytes.Contains(h.Source, []byte("json_dump")) {
			t.Fatalf("document %s holds the dump", h.Key)
		}
	}
	want := map[string]int{base + "-202644": 100, base + "-202645": 100, base + "-202646": 100}
	if fmt.Sprint(weeks) != fmt.Sprint(want) {
		t.Fatalf("documents per index %v, want %v", weeks, want)
	}
	// Counts by signature with a terms aggregation, checked against the documents.
	wantSig := map[string]int64{}
	var firefox int64
	for _, c := range crashes {
		var d struct{ Signature, Product string }
		if err := json.Unmarshal(c, &d); err != nil {
			t.Fatal(err)
		}
		if d.Product == "Firefox" {
			wantSig[d.Signature]++
			firefox++
		}
	}
	buckets, total, err := s.Count(ctx, Query{Match: map[string]any{"product": "Firefox"}, Size: 50}, "signature")
	if err != nil || total != firefox {
		t.Fatalf("Count: %d documents, %v; want %d", total, err, firefox)
	}
	gotSig := map[string]int64{}
	for i, b := range buckets {
		gotSig[b.Value] = b.Count
		if i > 0 && b.Count > buckets[i-1].Count {
			t.Fatalf("buckets not most frequent first: %v", buckets)
		}
	}
	if fmt.Sprint(gotSig) != fmt.Sprint(wantSig) {
		t.Fatalf("signature counts %v, want %v", gotSig, wantSig)
	}
	// Documents by field.
	id := string(keys[7])
	hits, total, err = s.Find(ctx, Query{Match: map[string]any{"uuid": id}})
	if err != nil || total != 1 || len(hits) != 1 || string(hits[0].Key) != id || !bytes.Equal(hits[0].Source, crashes[id]) {
		t.Fatalf("Find by uuid: %d hits, %v", total, err)
	}
	if err := s.DeleteAll(ctx, keys[:150]); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, ctx, s); n != 150 {
		t.Fatalf("after deleting 150 of 300: %d keys", n)
	}
}

// largeTests makes TestLoadAllKeysLarge list 100,000 documents instead of 20,000.
var largeTests = flag.Bool("es.large", false, "list 100,000 documents in TestLoadAllKeysLarge (15-40 s); CI=true does too")

// TestLoadAllKeysLarge lists 100,000 documents with -es.large or CI=true (20,000 otherwise) in
// pages of PageSize.
func TestLoadAllKeysLarge(t *testing.T) {
	n := 20_000
	if *largeTests || os.Getenv("CI") == "true" {
		n = 100_000
	}
	s, _ := newStore(t, func(c *Config) { c.BulkBytes = 2 << 20 })
	ctx := ctxT(t, 10*time.Minute)
	const chunk = 10_000
	for start := 0; start < n; start += chunk {
		keys, values := make([][]byte, chunk), make([][]byte, chunk)
		for i := range chunk {
			keys[i] = fmt.Appendf(nil, "key-%07d", start+i)
			values[i] = fmt.Appendf(nil, `{"i":%d}`, start+i)
		}
		if err := s.StoreAll(ctx, keys, values); err != nil {
			t.Fatal(err)
		}
	}
	seen := make([]bool, n)
	count := 0
	err := s.LoadAllKeys(ctx, func(k []byte) error {
		var i int
		if _, err := fmt.Sscanf(string(k), "key-%07d", &i); err != nil || i >= n || seen[i] {
			return fmt.Errorf("unexpected or repeated key %q", k)
		}
		seen[i] = true
		count++
		return nil
	})
	if err != nil || count != n {
		t.Fatalf("LoadAllKeys listed %d of %d keys: %v", count, n, err)
	}
}
