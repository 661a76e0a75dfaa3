package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// Retries that come after many later writes of their partition (answers.go): the Jepsen queue
// workload lost items when a poll's answer was lost and its retry arrived after the owner had
// forgotten the poll's answer (it kept the last 256), so the retry polled afresh.

// registerQueue registers on every member two partition processors over a FIFO in one map:
// "qoffer" appends its argument, "qpoll" removes the head item and returns it (nothing, and no
// change, when empty).
func registerQueue(t *testing.T, c *cluster) {
	t.Helper()
	index := func(v *PartitionView, key string) uint64 {
		if b, ok := v.Get([]byte(key)); ok {
			return binary.BigEndian.Uint64(b)
		}
		return 0
	}
	for _, s := range c.Svcs {
		err := s.RegisterPartitionProcessor("qoffer", func(_ context.Context, v *PartitionView, arg []byte) ([]byte, error) {
			tail := index(v, "tail")
			v.Set(fmt.Appendf(nil, "item%d", tail), append([]byte(nil), arg...))
			v.Set([]byte("tail"), binary.BigEndian.AppendUint64(nil, tail+1))
			return []byte{1}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.RegisterPartitionProcessor("qpoll", func(_ context.Context, v *PartitionView, _ []byte) ([]byte, error) {
			head, tail := index(v, "head"), index(v, "tail")
			if head == tail {
				return nil, nil
			}
			key := fmt.Appendf(nil, "item%d", head)
			item, _ := v.Get(key)
			v.Delete(key)
			v.Set([]byte("head"), binary.BigEndian.AppendUint64(nil, head+1))
			return append([]byte(nil), item...), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// queueItems returns the items the "qoffer"/"qpoll" FIFO of map name holds in partition p on
// member s, head first.
func queueItems(t *testing.T, s *Service, name string, p partition.ID) []string {
	t.Helper()
	pt := s.parts[p]
	pt.mu.RLock()
	defer pt.mu.RUnlock()
	index := func(key string) uint64 {
		if r := pt.rs.get(name, key, 0); r.ok {
			return binary.BigEndian.Uint64(r.value)
		}
		return 0
	}
	var out []string
	for i := index("head"); i < index("tail"); i++ {
		out = append(out, string(pt.rs.get(name, fmt.Sprintf("item%d", i), 0).value))
	}
	return out
}

// TestLateRetriedPollGetsItsItems: a poll-like partition processor whose answer is lost, then
// more than 256 other writes of the partition, then the retry: the retry gets the items the
// first run removed (the answer is kept by age, answers.go) instead of polling again, which
// would remove a second item and leave the first with nobody.
func TestLateRetriedPollGetsItsItems(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	registerQueue(t, c)
	registerAppend(t, c)
	ctx := context.Background()
	owner, client := c.Svc(0), c.Svc(1)
	p := partitionOwnedBy(t, c, owner.self)
	q, other := client.mustOpen(t, "q"), owner.mustOpen(t, "other")
	for _, item := range []string{"a", "b"} {
		if _, err := q.ExecutePartition(ctx, "qoffer", p, []byte(item)); err != nil {
			t.Fatal(err)
		}
	}
	lost := loseFirstAnswer(c, client.self, func() {
		for i := range minAnswers + 44 {
			if _, err := other.ExecutePartition(ctx, "append", p, fmt.Appendf(nil, "w%d", i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	res, err := q.ExecutePartition(ctx, "qpoll", p, nil)
	c.Net.SetAnswered(nil)
	if lost.Load() != 1 {
		t.Fatal("no answer was lost: the test did not test a retry")
	}
	if err != nil || string(res) != "a" {
		t.Fatalf("the retried poll returned %q, %v; want a (the first run's item)", res, err)
	}
	if got := queueItems(t, owner, "q", p); len(got) != 1 || got[0] != "b" {
		t.Fatalf("the queue holds %q; want [b] (the poll ran once)", got)
	}
}

// TestLateRetriedPutKeepsNewerWrite: a put whose answer is lost, then another writer's put of
// the same key and more than 256 other writes of the partition, then the retry: the retry is
// answered as the first attempt was and does not overwrite the newer value.
func TestLateRetriedPutKeepsNewerWrite(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	owner, client := c.Svc(0), c.Svc(1)
	om, cm := mustMap[string, string](t, owner, "m"), mustMap[string, string](t, client, "m")
	keys := keysOwnedBy(t, c, om, owner.self, 2, true)
	key, filler := keys[0], keys[1]
	lost := loseFirstAnswer(c, client.self, func() {
		if err := om.Put(ctx, key, "newer"); err != nil {
			t.Error(err)
		}
		for i := range minAnswers + 44 {
			if err := om.Put(ctx, filler, fmt.Sprint(i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	if err := cm.Put(ctx, key, "mine"); err != nil {
		t.Fatalf("the retried put: %v", err)
	}
	c.Net.SetAnswered(nil)
	if lost.Load() != 1 {
		t.Fatal("no answer was lost")
	}
	if v, err := cm.Get(ctx, key); err != nil || v != "newer" {
		t.Fatalf("value = %q, %v; want newer (the late retry applied the put again)", v, err)
	}
}

// TestRetryBeyondMemoryIsOutcomeUnknown: when the partition is written so fast that the
// answer of a lost poll is forgotten before its retry comes (more than maxAnswers later
// writes), the retry is not run again: it fails with ErrOutcomeUnknown, and nothing more is
// removed. The same for a put: the newer value stays.
func TestRetryBeyondMemoryIsOutcomeUnknown(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	registerQueue(t, c)
	ctx := context.Background()
	owner, client := c.Svc(0), c.Svc(1)
	om, cm := mustMap[string, string](t, owner, "m"), mustMap[string, string](t, client, "m")
	keys := keysOwnedBy(t, c, om, owner.self, 2, true)
	key, filler := keys[0], keys[1]
	p, _ := om.Partition(key)
	q := client.mustOpen(t, "q")
	for _, item := range []string{"a", "b"} {
		if _, err := q.ExecutePartition(ctx, "qoffer", p, []byte(item)); err != nil {
			t.Fatal(err)
		}
	}
	flood := func() {
		for i := range maxAnswers + 1 {
			if err := om.Put(ctx, filler, fmt.Sprint(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}

	lost := loseFirstAnswer(c, client.self, flood)
	res, err := q.ExecutePartition(ctx, "qpoll", p, nil)
	c.Net.SetAnswered(nil)
	if lost.Load() != 1 {
		t.Fatal("no answer was lost")
	}
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("the retried poll returned %q, %v; want ErrOutcomeUnknown (its answer is forgotten)", res, err)
	}
	if got := queueItems(t, owner, "q", p); len(got) != 1 || got[0] != "b" {
		t.Fatalf("the queue holds %q; want [b] (the retry must not poll again)", got)
	}

	lost = loseFirstAnswer(c, client.self, func() {
		if err := om.Put(ctx, key, "newer"); err != nil {
			t.Error(err)
		}
		flood()
	})
	err = cm.Put(ctx, key, "mine")
	c.Net.SetAnswered(nil)
	if lost.Load() != 1 {
		t.Fatal("no answer was lost")
	}
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("the retried put returned %v; want ErrOutcomeUnknown", err)
	}
	if v, err := cm.Get(ctx, key); err != nil || v != "newer" {
		t.Fatalf("value = %q, %v; want newer (the late retry applied the put again)", v, err)
	}
}

// TestRetryAgeReachesTheOwner: a retry carries the age of its operation's first call (an
// Attempt's, across calls) to the owner, which refuses it when its memory of the partition
// begins later (a copy received since, say) and decides it when its memory reaches back.
func TestRetryAgeReachesTheOwner(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	registerQueue(t, c)
	ctx := context.Background()
	owner, client := c.Svc(0), c.Svc(1)
	p := partitionOwnedBy(t, c, owner.self)
	q := client.mustOpen(t, "q")
	for _, item := range []string{"a", "b"} {
		if _, err := q.ExecutePartition(ctx, "qoffer", p, []byte(item)); err != nil {
			t.Fatal(err)
		}
	}
	memoryBegins := func(ago time.Duration) {
		pt := owner.parts[p]
		pt.mu.Lock()
		pt.rs.answers.from = monoNow() - int64(ago)
		pt.rs.answers.reach = pt.rs.answers.from
		pt.mu.Unlock()
	}
	memoryBegins(time.Minute)
	// A retry whose first call was two minutes ago: the owner may have forgotten it.
	a := Attempt{id: client.newOpID(), sent: true, first: time.Now().Add(-2 * time.Minute)}
	if res, err := q.ExecutePartitionAttempt(ctx, &a, "qpoll", p, nil); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("a retry older than the owner's memory returned %q, %v; want ErrOutcomeUnknown", res, err)
	}
	// One whose first call is younger than the memory (less the transit slack) is decided.
	a = Attempt{id: client.newOpID(), sent: true, first: time.Now().Add(-time.Minute + retryTransitSlack + 10*time.Second)}
	if res, err := q.ExecutePartitionAttempt(ctx, &a, "qpoll", p, nil); err != nil || string(res) != "a" {
		t.Fatalf("a retry younger than the owner's memory returned %q, %v; want a", res, err)
	}
	if got := queueItems(t, owner, "q", p); len(got) != 1 || got[0] != "b" {
		t.Fatalf("the queue holds %q; want [b]", got)
	}
}
