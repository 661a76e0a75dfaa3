package storetest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gridmap/gridmap/mapstore/memstore"
)

func serve(t *testing.T) (*memstore.Store, *Client, string) {
	t.Helper()
	st := memstore.New()
	srv := httptest.NewServer(NewServer(st))
	c := NewClient(srv.URL)
	t.Cleanup(func() { c.Close(); srv.Close() })
	return st, c, srv.URL
}

// awkward keys and values: empty, binary, NUL bytes, field-separator look-alikes, large.
var awkward = [][]byte{
	{}, {0}, {0, 0, 0xff}, []byte("plain"), []byte("a\nb\r\n"), bytes.Repeat([]byte{0x80}, 300),
	bytes.Repeat([]byte("x"), 1<<20+3),
}

func TestRoundTrip(t *testing.T) {
	st, c, _ := serve(t)
	ctx := context.Background()
	for i, v := range awkward {
		k := append([]byte{byte(i), 0}, v[:min(len(v), 10)]...)
		if err := c.Store(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		got, found, err := c.Load(ctx, k)
		if err != nil || !found || !bytes.Equal(got, v) {
			t.Fatalf("Load %q = %d bytes, %v, %v; want %d bytes", k, len(got), found, err, len(v))
		}
		if direct, _ := st.Get(k); !bytes.Equal(direct, v) {
			t.Fatalf("server store holds %d bytes under %q, want %d", len(direct), k, len(v))
		}
	}
	if _, found, err := c.Load(ctx, []byte("missing")); found || err != nil {
		t.Fatalf("Load of a missing key = %v, %v", found, err)
	}
	if err := c.Delete(ctx, []byte("missing")); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	k0 := append([]byte{0, 0}, awkward[0]...)
	if err := c.Delete(ctx, k0); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Get(k0); ok {
		t.Fatal("Delete did not reach the store")
	}
}

func TestBatchCalls(t *testing.T) {
	st, c, _ := serve(t)
	ctx := context.Background()
	keys := [][]byte{{}, {0}, []byte("k2"), {0xff, 0}}
	values := [][]byte{[]byte("v0"), {}, awkward[5], {1, 2, 3}}
	if err := c.StoreAll(ctx, keys, values); err != nil {
		t.Fatal(err)
	}
	if n := st.Count(memstore.OpStoreAll); n != 1 {
		t.Fatalf("%d StoreAll calls on the server, want 1", n)
	}
	for i, k := range keys {
		if got, _ := st.Get(k); !bytes.Equal(got, values[i]) {
			t.Fatalf("key %q: %q, want %q", k, got, values[i])
		}
	}
	ask := [][]byte{[]byte("k2"), []byte("nope"), {}, {0xff, 0}}
	seen := map[int][]byte{}
	err := c.LoadAll(ctx, ask, func(key, value []byte) error {
		i := slices.IndexFunc(ask, func(k []byte) bool {
			return unsafe.SliceData(k) == unsafe.SliceData(key) && len(k) == len(key)
		})
		if i < 0 || !bytes.Equal(ask[i], key) {
			t.Errorf("LoadAll passed key %q, not one of the slices asked", key)
		}
		seen[i] = value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]byte{0: values[2], 2: values[0], 3: values[3]}
	if len(seen) != len(want) {
		t.Fatalf("LoadAll returned %d keys, want %d", len(seen), len(want))
	}
	for i, v := range want {
		if !bytes.Equal(seen[i], v) {
			t.Fatalf("LoadAll %q = %q, want %q", ask[i], seen[i], v)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := c.LoadAll(ctx, ask, func(key, value []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("LoadAll with a failing fn = %v after %d calls", err, calls)
	}
	var listed [][]byte
	if err := c.LoadAllKeys(ctx, func(k []byte) error { listed = append(listed, bytes.Clone(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(listed, bytes.Compare)
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, bytes.Compare)
	if !slices.EqualFunc(listed, sorted, bytes.Equal) {
		t.Fatalf("LoadAllKeys = %q, want %q", listed, sorted)
	}
	if err := c.DeleteAll(ctx, [][]byte{{}, []byte("k2"), []byte("never")}); err != nil {
		t.Fatal(err)
	}
	if st.Len() != 2 {
		t.Fatalf("%d keys left after DeleteAll, want 2", st.Len())
	}
}

func TestFaults(t *testing.T) {
	st, c, _ := serve(t)
	ctx := context.Background()
	st.Down()
	ops := map[string]func() error{
		"Store":     func() error { return c.Store(ctx, []byte("k"), []byte("v")) },
		"Delete":    func() error { return c.Delete(ctx, []byte("k")) },
		"StoreAll":  func() error { return c.StoreAll(ctx, [][]byte{[]byte("k")}, [][]byte{[]byte("v")}) },
		"DeleteAll": func() error { return c.DeleteAll(ctx, [][]byte{[]byte("k")}) },
		"Load":      func() error { _, _, err := c.Load(ctx, []byte("k")); return err },
		"LoadAll": func() error {
			return c.LoadAll(ctx, [][]byte{[]byte("k")}, func(k, v []byte) error { return nil })
		},
		"LoadAllKeys": func() error { return c.LoadAllKeys(ctx, func(k []byte) error { return nil }) },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, memstore.ErrDown) {
			t.Fatalf("%s while down = %v, want memstore.ErrDown", name, err)
		}
	}
	if st.Len() != 0 {
		t.Fatal("a write reached the store while it was down")
	}
	st.Up()
	for name, op := range ops {
		if err := op(); err != nil {
			t.Fatalf("%s after Up: %v", name, err)
		}
	}
	st.FailNext(1, nil)
	if err := c.Store(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), memstore.ErrInjected.Error()) {
		t.Fatalf("Store with an injected failure = %v, want ErrRemote carrying the store's message", err)
	}
	if err := c.StoreAll(ctx, [][]byte{{1}}, nil); err == nil {
		t.Fatal("StoreAll with mismatched slices succeeded")
	}
}

func TestContextEndsCall(t *testing.T) {
	st, c, _ := serve(t)
	st.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Store(ctx, []byte("k"), []byte("v"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Store past its deadline = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("Store returned %v after its deadline", d)
	}
	st.SetLatency(0)
	// The server's handler saw the cancellation too: the write was not applied.
	deadline := time.Now().Add(10 * time.Second)
	for st.Count(memstore.OpStore) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server never finished the cancelled call")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := st.Get([]byte("k")); ok {
		t.Fatal("a cancelled Store was applied")
	}
}

func TestMalformedRequests(t *testing.T) {
	_, _, url := serve(t)
	for _, tc := range []struct {
		path string
		body []byte
		want int
	}{
		{"/store", []byte{5, 'a'}, http.StatusBadRequest},                // field longer than the body
		{"/store", appendField(nil, []byte("k")), http.StatusBadRequest}, // value missing
		{"/storeall", appendField(nil, []byte("k")), http.StatusBadRequest},
		{"/load", append(appendField(nil, []byte("k")), 0), http.StatusBadRequest}, // trailing byte
		{"/nosuch", nil, http.StatusBadRequest},
	} {
		resp, err := http.Post(url+tc.path, "application/octet-stream", bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %v: HTTP %d, want %d", tc.path, tc.body, resp.StatusCode, tc.want)
		}
	}
	resp, err := http.Get(url + "/load")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %d", resp.StatusCode)
	}
}
