package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// takeCluster starts two members' queue services over an in-memory network and returns them
// with a queue name whose owner is the first (the second reaches it over the network).
func takeCluster(t *testing.T) (c *enginetest.Cluster[*Service], owner, client *Service, name string) {
	t.Helper()
	cfg := engine.Config{ExpiryInterval: 20 * time.Millisecond, OperationTimeout: 20 * time.Second}
	c = enginetest.NewCluster(t, 2, enginetest.Config[*Service]{
		Partitions: 31,
		Plan:       partition.PlanConfig{Backups: 1, RecreateLost: true},
		Start: func(m enginetest.Member) (*Service, error) {
			e, err := engine.NewService(cfg, m.Node, m.Caller, m.Server)
			if err != nil {
				return nil, err
			}
			return WrapEngine(e, nil)
		},
		Stop: func(s *Service) { s.e.Close() },
	})
	owner, client = c.Svc(0), c.Svc(1)
	for i := 0; ; i++ {
		name = fmt.Sprint("q", i)
		if c.Coord.Table.Owner(owner.e.PartitionOf([]byte(name))) == c.Active[0] {
			return c, owner, client, name
		}
	}
}

func mustQueue(t *testing.T, s *Service, name string) *Queue[string] {
	t.Helper()
	q, err := New[string](s, name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// A Poll whose answer is late returns by its deadline, though the owner removed its item; the
// item goes back to the head, and the queue hands out every item in order afterwards.
func TestPollReturnsByItsDeadlineAndItsItemGoesBack(t *testing.T) {
	c, owner, client, name := takeCluster(t)
	ctx := context.Background()
	qc, qo := mustQueue(t, client, name), mustQueue(t, owner, name)
	want := []string{"a", "b", "c", "d", "e"}
	for _, it := range want {
		if err := qc.Offer(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	from := string(c.Active[1])
	c.Net.SetAnswered(func(f, _ string, typ transport.MsgType) bool {
		if f == from && typ == engine.MsgOp {
			<-release // served, its answer late
		}
		return false
	})
	const timeout = 200 * time.Millisecond
	pctx, cancel := context.WithTimeout(ctx, timeout)
	start := time.Now()
	it, ok, err := qc.Poll(pctx)
	took := time.Since(start)
	cancel()
	if !errors.Is(err, ErrTimeout) || ok {
		t.Fatalf("a poll without an answer returned %q, %v, %v; want ErrTimeout", it, ok, err)
	}
	if took > timeout+time.Second {
		t.Fatalf("the poll returned after %v, its deadline was %v", took, timeout)
	}
	if n, err := qo.Size(ctx); err != nil || n != 4 {
		t.Fatalf("size on the owner while the answer is held back: %d, %v; want 4 (the poll applied)", n, err)
	}
	close(release)
	c.Net.SetAnswered(nil)
	enginetest.Eventually(t, 20*time.Second, "the item the taker gave up on back in the queue", func() bool {
		return client.returned.Load() == 1
	})
	got, err := qo.Drain(ctx, 10)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Drain = %q, %v; want %q", got, err, want)
	}
}

// A Take whose owner does not answer at all returns by its deadline, and nothing is lost once
// the owner answers again.
func TestTakeReturnsByItsDeadlineWhileTheOwnerHangs(t *testing.T) {
	c, owner, client, name := takeCluster(t)
	ctx := context.Background()
	qc, qo := mustQueue(t, client, name), mustQueue(t, owner, name)
	if err := qc.Offer(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	from := string(c.Active[1])
	c.Net.SetHang(func(f, _ string, typ transport.MsgType) bool { return f == from && typ == engine.MsgOp })
	const timeout = 200 * time.Millisecond
	tctx, cancel := context.WithTimeout(ctx, timeout)
	start := time.Now()
	it, err := qc.Take(tctx)
	took := time.Since(start)
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("a take without an answer returned %q, %v; want ErrTimeout", it, err)
	}
	if took > timeout+time.Second {
		t.Fatalf("the take returned after %v, its deadline was %v", took, timeout)
	}
	c.Net.SetHang(nil)
	got, err := qo.Take(ctx)
	if err != nil || got != "a" {
		t.Fatalf("Take after the owner answers again = %q, %v; want a", got, err)
	}
}

// Consumers whose deadlines are shorter than the owner's (randomly late) answers take every
// item exactly once: none lost with a taker that gave up, none handed out twice.
func TestTakersGivingUpLoseNoItem(t *testing.T) {
	c, _, client, name := takeCluster(t)
	ctx := context.Background()
	qc := mustQueue(t, client, name)
	const n, consumers = 200, 4
	for i := range n {
		if err := qc.Offer(ctx, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	from := string(c.Active[1])
	c.Net.SetAnswered(func(f, _ string, typ transport.MsgType) bool {
		if f == from && typ == engine.MsgOp {
			time.Sleep(time.Duration(rand.N(30)) * time.Millisecond) // a late answer
		}
		return false
	})
	defer c.Net.SetAnswered(nil)
	var mu sync.Mutex
	seen := map[string]int{}
	total := 0
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, consumers)
	for range consumers {
		q := mustQueue(t, client, name)
		wg.Go(func() {
			for time.Now().Before(deadline) {
				mu.Lock()
				done := total == n
				mu.Unlock()
				if done {
					return
				}
				pctx, cancel := context.WithTimeout(ctx, time.Duration(5+rand.N(20))*time.Millisecond)
				items, err := q.Drain(pctx, 3)
				cancel()
				if err != nil && !errors.Is(err, ErrTimeout) {
					errs <- err
					return
				}
				mu.Lock()
				for _, it := range items {
					seen[it]++
					total++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range n {
		if k := seen[fmt.Sprint(i)]; k != 1 {
			t.Errorf("item %d taken %d times", i, k)
		}
	}
	if total != n {
		t.Errorf("%d items taken, want %d", total, n)
	}
	if client.returned.Load() == 0 {
		t.Errorf("no taker gave up with items removed: the test did not exercise the return")
	}
	t.Logf("%d items went back to the head for takers that gave up", client.returned.Load())
}

// A Poll whose answer is lost and whose retry reaches the owner only after it forgot the
// first poll's answer (the queue's partition took more writes meanwhile than the owner keeps
// answers of) fails with ErrOutcomeUnknown: not an empty answer, since the first poll removed
// an item, and not a second poll, which would remove another item for nobody.
func TestPollRetriedBeyondTheOwnersMemoryIsOutcomeUnknown(t *testing.T) {
	c, owner, client, name := takeCluster(t)
	ctx := context.Background()
	qc, qo := mustQueue(t, client, name), mustQueue(t, owner, name)
	for _, it := range []string{"a", "b"} {
		if err := qc.Offer(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	// Another queue in the same partition, which the owner floods.
	var other *Queue[string]
	for i := 0; other == nil; i++ {
		if n := fmt.Sprint("other", i); owner.e.PartitionOf([]byte(n)) == qo.Partition() {
			other = mustQueue(t, owner, n)
		}
	}
	from := string(c.Active[1])
	var lost sync.Once
	lostOne := false
	c.Net.SetAnswered(func(f, _ string, typ transport.MsgType) bool {
		if f != from || typ != engine.MsgOp {
			return false
		}
		first := false
		lost.Do(func() {
			first, lostOne = true, true
			for i := range 4100 {
				if err := other.Offer(ctx, fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
		return first
	})
	it, ok, err := qc.Poll(ctx)
	c.Net.SetAnswered(nil)
	if !lostOne {
		t.Fatal("no answer was lost: the test did not test a retry")
	}
	if !errors.Is(err, ErrOutcomeUnknown) || ok {
		t.Fatalf("the late retried poll returned %q, %v, %v; want ErrOutcomeUnknown", it, ok, err)
	}
	if errors.Is(err, ErrTimeout) {
		t.Fatalf("ErrOutcomeUnknown also matches ErrTimeout: %v", err)
	}
	if got, err := qo.Drain(ctx, 10); err != nil || !slices.Equal(got, []string{"b"}) {
		t.Fatalf("the queue holds %q, %v; want [b] (the first poll removed a, the retry nothing)", got, err)
	}
}
