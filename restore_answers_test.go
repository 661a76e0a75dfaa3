package gridmap

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// A write whose answer was lost before the cluster stopped, sent again to the cluster restored
// from its data folders, is not decided afresh: the restored copy holds what its first attempt
// did, not its answer, so the retry fails with ErrOutcomeUnknown instead of being applied a
// second time (a queue's poll removing a second item, a counter counting twice). A write first
// sent after the restoring member started (racing the restore: TestRestartRacingJoinAndLeave)
// is decided as usual.
func TestRetryAcrossARestoreIsOutcomeUnknown(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	incr := func(_ context.Context, v *engine.PartitionView, _ []byte) ([]byte, error) {
		n := 0
		if b, ok := v.Get([]byte("n")); ok {
			n, _ = strconv.Atoi(string(b))
		}
		n++
		v.Set([]byte("n"), []byte(strconv.Itoa(n)))
		return []byte(strconv.Itoa(n)), nil
	}
	start := func() (*Member, *engine.Map) {
		m := startMembers(t, 1, onFolder(dir, time.Minute, nil))[0]
		if err := m.engine.RegisterPartitionProcessor("test.incr", incr); err != nil {
			t.Fatal(err)
		}
		raw, err := m.engine.OpenMap("counter", func([]byte) (partition.ID, error) { return 0, nil })
		if err != nil {
			t.Fatal(err)
		}
		return m, raw
	}
	m, raw := start()
	var a engine.Attempt
	for range 2 { // the second call is a retry, answered from the owner's memory
		if res, err := raw.ExecutePartitionAttempt(ctx, &a, "test.incr", 0, nil); err != nil || string(res) != "1" {
			t.Fatalf("incr = %q, %v; want 1", res, err)
		}
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The cluster is down for a while: a retry is judged by when its first attempt was sent,
	// against when the restoring member started, to within the retry's time on the way (the
	// owner cannot measure it), so the two must be further apart than that.
	time.Sleep(time.Second)

	_, raw = start()
	res, err := raw.ExecutePartitionAttempt(ctx, &a, "test.incr", 0, nil)
	if !errors.Is(err, dmap.ErrOutcomeUnknown) {
		t.Fatalf("the retry after the restore returned %q, %v; want ErrOutcomeUnknown", res, err)
	}
	// A new write is decided, and counts from the restored value.
	if res, err := raw.ExecutePartitionAttempt(ctx, nil, "test.incr", 0, nil); err != nil || string(res) != "2" {
		t.Fatalf("a new incr after the restore = %q, %v; want 2", res, err)
	}
}
