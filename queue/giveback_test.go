package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
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
	return takeClusterTimeout(t, 20*time.Second)
}

// takeClusterTimeout is takeCluster with the members' operation timeout.
func takeClusterTimeout(t *testing.T, opTimeout time.Duration) (c *enginetest.Cluster[*Service], owner, client *Service, name string) {
	t.Helper()
	cfg := engine.Config{ExpiryInterval: 20 * time.Millisecond, OperationTimeout: opTimeout}
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

// heldPoll offers want through the client, then polls through it with a short deadline while
// the owner holds the poll's answer back: the poll returns ErrTimeout, the owner has removed the
// first item. It returns the function that releases the answer.
func heldPoll(t *testing.T, c *enginetest.Cluster[*Service], qc *Queue[string], want []string) (release func()) {
	t.Helper()
	ctx := context.Background()
	for _, it := range want {
		if err := qc.Offer(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	held := make(chan struct{})
	from := string(c.Active[1])
	c.Net.SetAnswered(func(f, _ string, typ transport.MsgType) bool {
		if f == from && typ == engine.MsgOp {
			<-held
		}
		return false
	})
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if it, ok, err := qc.Poll(pctx); !errors.Is(err, ErrTimeout) || ok {
		t.Fatalf("a poll without an answer returned %q, %v, %v; want ErrTimeout", it, ok, err)
	}
	return func() { c.Net.SetAnswered(nil); close(held) }
}

// dropFor makes every operation the client sends fail as unreachable, and reports (through the
// returned function) for how long such calls have been dropped.
func dropFor(c *enginetest.Cluster[*Service]) (dropping func() time.Duration) {
	return dropAfter(c, func() bool { return true })
}

// dropAfter is dropFor once start reports true.
func dropAfter(c *enginetest.Cluster[*Service], start func() bool) (dropping func() time.Duration) {
	from := string(c.Active[1])
	var mu sync.Mutex
	var first, last time.Time
	c.Net.SetDrop(func(f, _ string, typ transport.MsgType) bool {
		if f != from || typ != engine.MsgOp || !start() {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if first.IsZero() {
			first = time.Now()
		}
		last = time.Now()
		return true
	})
	return func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return last.Sub(first)
	}
}

// The items of a poll whose taker gave up are the member's only copy: while the owner stays out
// of reach (far longer than the take's recovery window), the member keeps trying to put them
// back, and they are back once it is reachable again. (The give-back used to give up after the
// recovery window, logging the items as lost: the 10-minute Jepsen run lost an item that way.)
func TestGiveBackKeepsTryingWhileTheOwnerIsOutOfReach(t *testing.T) {
	c, owner, client, name := takeClusterTimeout(t, time.Second)
	const recovery = 200 * time.Millisecond
	SetRecovery(client, recovery)
	ctx := context.Background()
	qc, qo := mustQueue(t, client, name), mustQueue(t, owner, name)
	want := []string{"a", "b", "c"}
	release := heldPoll(t, c, qc, want)
	dropping := dropFor(c)
	release() // the poll's answer arrives; every put-back is dropped
	enginetest.Eventually(t, 20*time.Second, "put-backs dropped for 5 recovery windows", func() bool {
		return dropping() > 5*recovery
	})
	if st := client.GiveBacks(); st.Holding != 1 || st.Returned != 0 || st.Lost != 0 || st.Unknown != 0 {
		t.Fatalf("give-backs while the owner is out of reach: %+v; want 1 item held", st)
	}
	c.Net.SetDrop(nil)
	enginetest.Eventually(t, 20*time.Second, "the item back in the queue", func() bool {
		return client.GiveBacks().Returned == 1
	})
	if st := client.GiveBacks(); st != (GiveBackStats{Returned: 1}) {
		t.Fatalf("give-backs once the owner is reachable: %+v; want 1 returned", st)
	}
	if got, err := qo.Drain(ctx, 10); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Drain = %q, %v; want %q", got, err, want)
	}
}

// A member that closes while it holds the items of a taker that gave up counts them as lost
// (GiveBacks), rather than dropping them silently.
func TestGiveBackCountsItemsHeldAtCloseAsLost(t *testing.T) {
	c, _, client, name := takeClusterTimeout(t, time.Second)
	SetRecovery(client, 200*time.Millisecond)
	qc := mustQueue(t, client, name)
	release := heldPoll(t, c, qc, []string{"a", "b"})
	dropping := dropFor(c)
	release()
	enginetest.Eventually(t, 20*time.Second, "the item held, its put-back dropped", func() bool {
		return client.GiveBacks().Holding == 1 && dropping() > 300*time.Millisecond
	})
	client.e.Close()
	if st := client.GiveBacks(); st != (GiveBackStats{Lost: 1}) {
		t.Fatalf("give-backs after the member closed: %+v; want 1 lost", st)
	}
}

// A poll whose taker gave up and that stays unanswered past the recovery window is sent again
// until it is answered, and its items go back; one still unanswered when the member closes is
// counted as of unknown outcome.
func TestGiveBackSettlesAPollUnansweredPastTheRecoveryWindow(t *testing.T) {
	c, owner, client, name := takeClusterTimeout(t, 100*time.Millisecond)
	const recovery = 200 * time.Millisecond
	SetRecovery(client, recovery)
	ctx := context.Background()
	qc, qo := mustQueue(t, client, name), mustQueue(t, owner, name)
	want := []string{"a", "b"}
	for _, it := range want {
		if err := qc.Offer(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	from := string(c.Active[1])
	var once sync.Once
	var lostOne atomic.Bool
	c.Net.SetAnswered(func(f, _ string, typ transport.MsgType) bool {
		lose := false
		if f == from && typ == engine.MsgOp {
			once.Do(func() { lose = true; lostOne.Store(true) }) // the poll applied, its answer lost
		}
		return lose
	})
	dropping := dropAfter(c, lostOne.Load) // and its retries dropped
	pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, _, err := qc.Poll(pctx)
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("a poll without an answer returned %v; want ErrTimeout", err)
	}
	enginetest.Eventually(t, 20*time.Second, "retries dropped for 5 recovery windows", func() bool {
		return dropping() > 5*recovery // 10 operation timeouts
	})
	if n, err := qo.Size(ctx); err != nil || n != 1 {
		t.Fatalf("size on the owner while the poll's retries are dropped: %d, %v; want 1 (the poll applied)", n, err)
	}
	c.Net.SetDrop(nil)
	c.Net.SetAnswered(nil)
	enginetest.Eventually(t, 20*time.Second, "the item back in the queue", func() bool {
		return client.GiveBacks().Returned == 1
	})
	if got, err := qo.Drain(ctx, 10); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Drain = %q, %v; want %q", got, err, want)
	}
}
