package mapstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// testTimeout bounds every wait in these tests; they poll for conditions, never sleep.
const testTimeout = 30 * time.Second

func startFlusher(t *testing.T, cfg mapstore.Config, store mapstore.Store) *mapstore.Flusher {
	t.Helper()
	q, err := mapstore.NewQueue(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mapstore.NewFlusher(context.Background(), mapstore.FlusherConfig{Queue: q, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		f.Close(ctx)
	})
	return f
}

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func add(t *testing.T, f *mapstore.Flusher, k, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := f.Add(ctx, mapstore.Entry{Key: []byte(k), Value: []byte(v)}); err != nil {
		t.Fatal(err)
	}
}

func flush(t *testing.T, f *mapstore.Flusher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFlusherCoalescesThousandUpdatesIntoOneCall(t *testing.T) {
	store := memstore.New()
	f := startFlusher(t, mapstore.Config{WriteDelay: time.Hour}, store)
	for i := 1; i <= 1000; i++ {
		add(t, f, "k", strconv.Itoa(i))
	}
	flush(t, f)
	if n := store.Count(memstore.OpStoreAll, memstore.OpStore); n != 1 {
		t.Fatalf("%d store calls, want 1", n)
	}
	if v, _ := store.Get([]byte("k")); string(v) != "1000" {
		t.Fatalf("stored %q, want 1000", v)
	}
}

func TestFlusherWithoutCoalescingStoresEveryValueInOrder(t *testing.T) {
	store := memstore.New()
	f := startFlusher(t, mapstore.Config{WriteDelay: time.Hour, Coalesce: mapstore.CoalesceOff}, store)
	for i := 1; i <= 1000; i++ {
		add(t, f, "k", strconv.Itoa(i))
	}
	flush(t, f)
	calls := store.CallsFor("k")
	if len(calls) != 1000 {
		t.Fatalf("%d calls for k, want 1000", len(calls))
	}
	for i, c := range calls {
		if string(c.Value) != strconv.Itoa(i+1) || c.Err != nil {
			t.Fatalf("call %d stored %q (err %v), want %d", i, c.Value, c.Err, i+1)
		}
	}
}

func TestFlusherStoreOutage(t *testing.T) {
	store := memstore.New()
	cfg := mapstore.Config{WriteDelay: time.Millisecond, RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond, BatchSize: 7}
	f := startFlusher(t, cfg, store)
	store.Down()
	for i := range 100 {
		add(t, f, fmt.Sprint("k", i%30), strconv.Itoa(i))
	}
	waitFor(t, "a failed store attempt", func() bool { return f.Stats().Errors > 0 })
	// the store stays down: flush cannot finish, and says why
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := f.Flush(ctx)
	cancel()
	if !errors.Is(err, mapstore.ErrFlushTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush while down: %v", err)
	}
	if s := f.Stats(); s.Entries != 30 || !errors.Is(s.LastError, memstore.ErrDown) || s.Errors == 0 {
		t.Fatalf("while down: %+v", s)
	}
	store.Up()
	store.FailNext(3, nil) // and it stumbles a few more times on the way back
	flush(t, f)
	for i := 70; i < 100; i++ {
		if v, _ := store.Get([]byte(fmt.Sprint("k", i%30))); string(v) != strconv.Itoa(i) {
			t.Fatalf("k%d = %q, want %d", i%30, v, i)
		}
	}
	if s := f.Stats(); s.Entries != 0 || s.ConsecutiveFailures != 0 || s.Retries == 0 {
		t.Fatalf("after recovery: %+v", s)
	}
}

func TestFlusherBackPressure(t *testing.T) {
	store := memstore.New()
	store.Down()
	f := startFlusher(t, mapstore.Config{WriteDelay: time.Millisecond, MaxDirtyEntries: 10, RetryInitial: time.Millisecond, RetryMax: time.Millisecond}, store)
	for i := range 10 {
		add(t, f, fmt.Sprint("k", i), "v")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	err := f.Add(ctx, mapstore.Entry{Key: []byte("one-too-many"), Value: []byte("v")})
	cancel()
	if !errors.Is(err, mapstore.ErrDirtyLimit) {
		t.Fatalf("add at the limit: %v, want ErrDirtyLimit", err)
	}
	store.Up()
	add(t, f, "one-too-many", "v") // waits until the store drained some
	flush(t, f)
	if store.Len() != 11 {
		t.Fatalf("store has %d keys, want 11", store.Len())
	}
}

// Writes that arrive while their key's batch is being stored are stored afterwards.
func TestFlusherRedirtyDuringSlowStore(t *testing.T) {
	store := memstore.New()
	store.SetLatency(2 * time.Millisecond)
	f := startFlusher(t, mapstore.Config{WriteDelay: time.Microsecond}, store)
	for i := 1; i <= 200; i++ {
		add(t, f, fmt.Sprint("k", i%3), strconv.Itoa(i))
	}
	flush(t, f)
	for i := 198; i <= 200; i++ {
		if v, _ := store.Get([]byte(fmt.Sprint("k", i%3))); string(v) != strconv.Itoa(i) {
			t.Fatalf("k%d = %q, want %d", i%3, v, i)
		}
	}
}

// onlyStore hides the batch methods of a store.
type onlyStore struct{ s *memstore.Store }

func (o onlyStore) Store(ctx context.Context, k, v []byte) error { return o.s.Store(ctx, k, v) }
func (o onlyStore) Delete(ctx context.Context, k []byte) error   { return o.s.Delete(ctx, k) }

func TestFlusherUsesSingleCallsWithoutBatchStoreAndCloseFlushes(t *testing.T) {
	store := memstore.New()
	q, _ := mapstore.NewQueue(mapstore.Config{WriteDelay: time.Hour}, nil)
	f, err := mapstore.NewFlusher(context.Background(), mapstore.FlusherConfig{Queue: q, Store: onlyStore{store}})
	if err != nil {
		t.Fatal(err)
	}
	add(t, f, "a", "1")
	add(t, f, "b", "1")
	ctx := context.Background()
	if err := f.Add(ctx, mapstore.Entry{Key: []byte("b"), Delete: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if store.Count(memstore.OpStore) != 1 || store.Count(memstore.OpDelete) != 1 || store.Count(memstore.OpStoreAll, memstore.OpDeleteAll) != 0 {
		t.Fatalf("calls: %+v", store.Calls())
	}
	if err := f.Flush(ctx); !errors.Is(err, mapstore.ErrClosed) {
		t.Fatalf("flush after close: %v", err)
	}
}

func TestNewFlusherValidates(t *testing.T) {
	if _, err := mapstore.NewFlusher(context.Background(), mapstore.FlusherConfig{}); !errors.Is(err, mapstore.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
}
