package hbase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// crashID returns a deterministic Socorro crash ID submitted on day: a random-looking UUID
// whose last six characters are the date YYMMDD.
func crashID(r *rand.Rand, day time.Time) string {
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%06x%s", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, r.Uint32()&0xffff, r.Uint32()&0xffffff, day.Format("060102"))
}

func testStore(t *testing.T, c *Client) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	table := fmt.Sprintf("gridmap_store_%d_%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	st, err := NewStore(ctx, c, StoreConfig{Table: table, Family: "raw_data", Keys: SocorroKeys{}, CreateTable: true, TableOptions: TableOptions{SplitKeys: SocorroKeys{}.SplitKeys()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.DeleteTable(ctx, table); err != nil {
			t.Logf("delete table %s: %v", table, err)
		}
	})
	return st
}

// TestStore runs the mapstore contract on a Socorro-keyed table pre-split into 16 salt
// regions: single and batched writes, loads, deletes (idempotent), and the key listing.
func TestStore(t *testing.T) {
	c := testClient(t)
	st := testStore(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := rand.New(rand.NewPCG(1, 2))
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	const n = 500
	keys := make([][]byte, n)
	values := make([][]byte, n)
	for i := range n {
		keys[i] = []byte(crashID(r, day))
		values[i] = fmt.Appendf(nil, `{"crash_id":%q,"n":%d}`, keys[i], i)
	}
	values[3] = []byte{} // an empty value is a value
	if err := st.StoreAll(ctx, keys, values); err != nil {
		t.Fatal(err)
	}
	if err := st.StoreAll(ctx, keys, values); err != nil { // idempotent
		t.Fatal(err)
	}
	single := []byte(crashID(r, day) + "/dump/upload_file_minidump")
	if err := st.Store(ctx, single, []byte("MDMP")); err != nil {
		t.Fatal(err)
	}
	for i, k := range [][]byte{keys[0], keys[3], single} {
		v, found, err := st.Load(ctx, k)
		want := []byte("MDMP")
		if i < 2 {
			want = values[[]int{0, 3}[i]]
		}
		if err != nil || !found || !bytes.Equal(v, want) {
			t.Fatalf("Load %s: %q %v %v", k, v, found, err)
		}
	}
	loaded := map[string]string{}
	if err := st.LoadAll(ctx, append(keys, []byte(crashID(r, day))), func(k, v []byte) error {
		loaded[string(k)] = string(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(loaded) != n {
		t.Fatalf("LoadAll found %d of %d keys", len(loaded), n)
	}
	for i, k := range keys {
		if loaded[string(k)] != string(values[i]) {
			t.Fatalf("LoadAll %s = %q", k, loaded[string(k)])
		}
	}
	var listed []string
	if err := st.LoadAllKeys(ctx, func(k []byte) error {
		listed = append(listed, string(k))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{string(single)}
	for _, k := range keys {
		want = append(want, string(k))
	}
	sort.Strings(listed)
	sort.Strings(want)
	if fmt.Sprint(listed) != fmt.Sprint(want) {
		t.Fatalf("LoadAllKeys listed %d keys, want %d", len(listed), len(want))
	}
	// One day's crashes are the day's 16 prefixes.
	count := 0
	for _, p := range (SocorroKeys{}).DayPrefixes(day) {
		if err := c.Scan(ctx, st.cfg.Table, ScanOptions{Prefix: p, KeysOnly: true}, func(Row) error { count++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if count != n+1 {
		t.Fatalf("day scan found %d rows, want %d", count, n+1)
	}

	if err := st.DeleteAll(ctx, keys[:100]); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, single); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, single); err != nil { // deleting a missing key is no error
		t.Fatal(err)
	}
	if _, found, err := st.Load(ctx, keys[0]); err != nil || found {
		t.Fatalf("deleted key: found %v, err %v", found, err)
	}
	if err := st.Store(ctx, []byte("not-a-crash-id"), []byte("x")); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad key: %v", err)
	}
}
