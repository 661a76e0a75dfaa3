package engine

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// loseFirstAnswer makes the answer of the first operation from member from lost (after the
// owner served it), running then (if not nil) before the caller learns of the loss.
func loseFirstAnswer(c *cluster, from partition.MemberID, then func()) *atomic.Int32 {
	var lost atomic.Int32
	c.Net.SetAnswered(func(f, to string, typ transport.MsgType) bool {
		if f != string(from) || typ != msgOp || !lost.CompareAndSwap(0, 1) {
			return false
		}
		if then != nil {
			then()
		}
		return true
	})
	return &lost
}

// TestRetriedWriteIsAppliedOnce: a write whose answer is lost on the way back is retried by the
// router, and the owner answers the retry with its first answer instead of applying it again.
func TestRetriedWriteIsAppliedOnce(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	owner, client := c.Svc(0), c.Svc(1)
	om, cm := mustMap[string, string](t, owner, "m"), mustMap[string, string](t, client, "m")
	key := keysOwnedBy(t, c, om, owner.self, 1, false)[0]
	if err := cm.Put(ctx, key, "v0"); err != nil {
		t.Fatal(err)
	}

	// A compare-and-set applied by the owner whose answer is lost: the retry says it happened.
	lost := loseFirstAnswer(c, client.self, nil)
	if ok, err := cm.ReplaceIfSame(ctx, key, "v0", "v1"); err != nil || !ok {
		t.Fatalf("retried ReplaceIfSame = %v, %v; want true (it took effect)", ok, err)
	}
	if lost.Load() != 1 {
		t.Fatal("no answer was lost: the test did not test a retry")
	}
	if v, err := om.Get(ctx, key); err != nil || v != "v1" {
		t.Fatalf("value = %q, %v; want v1", v, err)
	}

	// A put whose answer is lost while another writer's put comes in before the retry: the
	// retry must not overwrite the later write.
	lost = loseFirstAnswer(c, client.self, func() {
		if err := om.Put(ctx, key, "other"); err != nil {
			t.Error(err)
		}
	})
	if err := cm.Put(ctx, key, "mine"); err != nil {
		t.Fatal(err)
	}
	if lost.Load() != 1 {
		t.Fatal("no answer was lost")
	}
	if v, err := cm.Get(ctx, key); err != nil || v != "other" {
		t.Fatalf("value = %q, %v; want the later writer's (the retried put was applied twice)", v, err)
	}
	c.Net.SetAnswered(nil)
}

// TestRetryAfterFailoverGetsFirstAnswer: the owner applies a write, its backup acknowledges,
// and the owner dies before its answer reaches the caller; the retry on the promoted backup is
// answered with the first answer.
func TestRetryAfterFailoverGetsFirstAnswer(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	probe := mustMap[string, string](t, c.Svc(0), "m")
	ownerID := c.Svc(0).self
	key := keysOwnedBy(t, c, probe, ownerID, 1, false)[0]
	p, _ := probe.Partition(key)
	var client *Service
	for _, id := range c.Active {
		if tab, _ := c.Coord.Watch(); !tab.IsReplica(p, id) {
			client = c.Svcs[id]
		}
	}
	if client == nil {
		t.Fatal("every member is a replica")
	}
	cm := mustMap[string, string](t, client, "m")
	if err := cm.Put(ctx, key, "v0"); err != nil {
		t.Fatal(err)
	}
	lost := loseFirstAnswer(c, client.self, func() { c.Kill(ownerID) })
	if ok, err := cm.ReplaceIfSame(ctx, key, "v0", "v1"); err != nil || !ok {
		t.Fatalf("ReplaceIfSame retried on the new owner = %v, %v; want true (it took effect)", ok, err)
	}
	if lost.Load() != 1 {
		t.Fatal("no answer was lost")
	}
	if tab, _ := c.Coord.Watch(); tab.Owner(p) == ownerID {
		t.Fatal("the owner did not change")
	}
	if v, err := cm.Get(ctx, key); err != nil || v != "v1" {
		t.Fatalf("value = %q, %v; want v1", v, err)
	}
	c.Net.SetAnswered(nil)
}

// fakeMono is a settable clock for answer tables (answerTable.clock).
type fakeMono struct{ t int64 }

func (c *fakeMono) now() int64 { return c.t }

func (c *fakeMono) add(d time.Duration) { c.t += int64(d) }

// TestAnswerTableBound: a partition keeps every answer younger than answerRetention up to
// maxAnswers, and at least the newest minAnswers however old; what it forgot moves its reach,
// and a retry whose first attempt may predate the reach is refused (mayPredate).
func TestAnswerTableBound(t *testing.T) {
	clock := &fakeMono{t: int64(time.Hour)}
	tab := answerTable{clock: clock.now}
	tab.resetFresh()
	r := rand.New(rand.NewPCG(1, 2))
	var ids []opID
	add := func(n int, every time.Duration) {
		for range n {
			id := opID{r.Uint64() | 1, r.Uint64()}
			if len(ids)%7 == 0 {
				id.lo = uint64(len(ids)) // neighbours share probe sequences more often
			}
			tab.remember(id, answer(len(ids)%4), nil, false, len(ids)%2 == 0)
			ids = append(ids, id)
			clock.add(every)
		}
	}
	remembered := func(from int) {
		t.Helper()
		for j := from; j < len(ids); j++ {
			if e, ok := tab.lookup(ids[j]); !ok || e.ans != answer(j%4) {
				t.Fatalf("after %d writes, write %d is forgotten or wrong", len(ids), j)
			}
		}
		for j := range from {
			if _, ok := tab.lookup(ids[j]); ok {
				t.Fatalf("after %d writes, write %d is still remembered (from %d on)", len(ids), j, from)
			}
		}
		if tab.len() != len(ids)-from {
			t.Fatalf("%d answers remembered, want %d", tab.len(), len(ids)-from)
		}
	}

	// Fresh: it forgot nothing, so every retry is decided.
	add(3*minAnswers, time.Millisecond)
	remembered(0)
	if tab.mayPredate(time.Hour) || tab.mayPredate(ageUnknown) {
		t.Fatal("a table that forgot nothing refuses a retry")
	}
	// Young answers are kept beyond minAnswers, up to maxAnswers.
	add(maxAnswers, time.Millisecond)
	remembered(len(ids) - maxAnswers)
	for i := 0; i < 4; i++ {
		add(maxAnswers/2, time.Millisecond)
		remembered(len(ids) - maxAnswers)
	}
	// Forgetting moved the reach to about maxAnswers writes ago: 4 s at 1 ms a write, less than
	// retryTransitSlack, so even a retry sent right after its first attempt may predate it.
	if !tab.mayPredate(0) {
		t.Fatal("a retry placed before the reach was decided")
	}
	clock.add(answerRetention)
	// Old answers beyond minAnswers are forgotten as time passes (at the next mark).
	add(answerMarkEvery, 0)
	remembered(len(ids) - minAnswers)
	reach := tab.reach
	if reach > clock.t-int64(answerRetention)+int64(answerMarkEvery)*int64(time.Millisecond) || reach < clock.t-int64(answerRetention)-int64(time.Second) {
		t.Fatalf("reach %v before now, want about answerRetention", time.Duration(clock.t-reach))
	}
	if tab.mayPredate(MaxRetryWindow - time.Second) {
		t.Fatal("a retry within MaxRetryWindow was refused by a table that kept answerRetention")
	}
	if !tab.mayPredate(MaxRetryWindow+time.Second) || !tab.mayPredate(ageUnknown) {
		t.Fatal("a retry older than the memory was decided")
	}
	// Remembering an answer again (a write applied twice, a copy) forgets nothing.
	tab.remember(ids[len(ids)-1], 0, nil, false, true)
	remembered(len(ids) - minAnswers)

	// Results: beyond minAnswers, at most maxAnswerResultBytes of them.
	tab.resetFresh()
	ids = ids[:0]
	big := make([]byte, 4<<10)
	for i := range 2 * maxAnswerResultBytes / len(big) {
		id := opID{1, uint64(i + 1)}
		tab.remember(id, 1, big, false, false)
		ids = append(ids, id)
	}
	if tab.resultBytes > max(maxAnswerResultBytes, minAnswers*len(big)) || tab.resultBytes != len(big)*tab.len() {
		t.Fatalf("%d bytes of results remembered for %d answers", tab.resultBytes, tab.len())
	}
	last := ids[len(ids)-1]
	if e, ok := tab.lookup(last); !ok || len(tab.response(e).Value) != len(big) {
		t.Fatal("the newest result is not remembered")
	}
	if len(tab.results) != tab.len() {
		t.Fatalf("%d results for %d answers", len(tab.results), tab.len())
	}
}

// TestAnswerReachTravelsWithCopies: a copy carries its sender's reach (a store that forgot
// nothing copies as one that forgot nothing, else the receiver's memory begins no earlier than
// the sender's), and a store emptied for a copy from a sender without reach marks begins at the
// copy.
func TestAnswerReachTravelsWithCopies(t *testing.T) {
	clock := &fakeMono{t: int64(time.Hour)}
	src := newRecordStore()
	src.answers.clock = clock.now
	for i := range 10 {
		src.answers.remember(opID{1, uint64(i + 1)}, 1, nil, false, false)
	}
	receive := func(snap []mutation) *recordStore {
		dst := newRecordStore()
		dst.answers.clock = clock.now
		dst.beginSync()
		for _, m := range snap {
			dst.apply(m)
		}
		return dst
	}
	dst := receive(src.snapshot())
	if dst.answers.len() != 10 || dst.answers.mayPredate(time.Hour) {
		t.Fatalf("copy of a table that forgot nothing: %d answers, refuses old retries %v", dst.answers.len(), dst.answers.mayPredate(time.Hour))
	}
	// The sender forgot answers: the receiver's memory begins no earlier.
	for i := range maxAnswers + 100 {
		src.answers.remember(opID{2, uint64(i + 1)}, 1, nil, false, false)
		clock.add(time.Millisecond)
	}
	clock.add(time.Minute)
	snap := src.snapshot()
	clock.add(time.Second) // the copy's way
	dst = receive(snap)
	if dst.answers.reach < src.answers.reach || dst.answers.reach > src.answers.reach+int64(2*time.Second) {
		t.Fatalf("receiver reaches back to %d, sender to %d", dst.answers.reach, src.answers.reach)
	}
	// Without the reach mark (a sender from before them), the memory begins at the copy.
	clock.add(time.Minute)
	dst = receive(snap[:len(snap)-1])
	if dst.answers.reach != clock.t || !dst.answers.mayPredate(0) {
		t.Fatalf("a copy without reach mark: reach %d, now %d", dst.answers.reach, clock.t)
	}
	clock.add(retryTransitSlack + time.Second)
	if dst.answers.mayPredate(0) {
		t.Fatal("a retry whose first attempt came after the copy was refused")
	}
}

// TestAnswersAreReplicatedAndCopied: owner and backup hold the same answers, and a copy to a
// new backup carries them.
func TestAnswersAreReplicatedAndCopied(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	m := mustMap[string, string](t, c.Svc(1), "m")
	key := keysOwnedBy(t, c, m, c.Svc(0).self, 1, false)[0]
	p, _ := m.Partition(key)
	for i := range 3 * minAnswers {
		if err := m.Put(ctx, key, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	remembered := func(s *Service) map[opID]answer {
		pt := s.parts[p]
		pt.mu.RLock()
		defer pt.mu.RUnlock()
		out := map[opID]answer{}
		for i := range pt.rs.answers.len() {
			e := pt.rs.answers.at(i)
			out[e.id] = e.ans
		}
		return out
	}
	want := remembered(c.Svc(0))
	if len(want) != 3*minAnswers {
		t.Fatalf("the owner remembers %d answers of partition %d, want %d (all young)", len(want), p, 3*minAnswers)
	}
	cur, _ := c.Coord.Watch()
	backup := cur.Partitions[p].Replicas[1]
	if got := remembered(c.Svcs[backup]); !maps.Equal(got, want) {
		t.Fatalf("the backup remembers %d answers, not the owner's %d", len(got), len(want))
	}
	c.Kill(backup)
	next := c.WaitStable().Partitions[p].Replicas[1]
	if got := remembered(c.Svcs[next]); !maps.Equal(got, want) {
		t.Fatalf("the new backup %s got %d answers in its copy, not the owner's %d", next, len(got), len(want))
	}
}

// TestReadsNeverSeeUnacknowledgedWrites: while a backup holds back its acknowledgement of a
// write, reads of that key on the owner return the previous value; reads of other keys of the
// same partition proceed; once acknowledged, the write is seen.
func TestReadsNeverSeeUnacknowledgedWrites(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	owner, other := c.Svc(0), c.Svc(1)
	om, rm := mustMap[string, string](t, owner, "m"), mustMap[string, string](t, other, "m")
	keys := keysOwnedBy(t, c, om, owner.self, 3, true)
	written, untouched, fresh := keys[0], keys[1], keys[2]
	for _, k := range keys[:2] {
		if err := om.Put(ctx, k, "old"); err != nil {
			t.Fatal(err)
		}
	}

	for _, step := range []struct {
		name string
		key  string
		want string // "" = absent
	}{{"replace", written, "old"}, {"create", fresh, ""}} {
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		c.Net.SetAnswered(func(from, to string, typ transport.MsgType) bool {
			if from == string(owner.self) && typ == msgBackup {
				once.Do(func() { close(entered) })
				<-release
			}
			return false
		})
		done := make(chan error, 1)
		go func() { done <- om.Put(ctx, step.key, "new") }()
		select {
		case <-entered:
		case err := <-done:
			t.Fatalf("%s: put returned before its backup acknowledged: %v", step.name, err)
		case <-ctx.Done():
			t.Fatalf("%s: backup never reached", step.name)
		}
		for _, m := range []*tmap[string, string]{om, rm} {
			v, err := m.Get(ctx, step.key)
			if step.want == "" {
				if err == nil {
					t.Fatalf("%s: Get = %q before the backup acknowledged; want absent", step.name, v)
				}
			} else if err != nil || v != step.want {
				t.Fatalf("%s: Get = %q, %v before the backup acknowledged; want %q", step.name, v, err, step.want)
			}
			if ok, err := m.ContainsKey(ctx, step.key); err != nil || ok != (step.want != "") {
				t.Fatalf("%s: ContainsKey = %v, %v before the backup acknowledged", step.name, ok, err)
			}
			// Another key of the same partition is read without waiting for the write.
			if v, err := m.Get(ctx, untouched); err != nil || v != "old" {
				t.Fatalf("%s: Get of another key = %q, %v", step.name, v, err)
			}
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		c.Net.SetAnswered(nil)
		for _, m := range []*tmap[string, string]{om, rm} {
			if v, err := m.Get(ctx, step.key); err != nil || v != "new" {
				t.Fatalf("%s: Get after the acknowledgement = %q, %v", step.name, v, err)
			}
		}
	}
	if n, err := om.Size(ctx); err != nil || n != 3 {
		t.Fatalf("Size = %d, %v; want 3", n, err)
	}
}

// TestRetriedProcessorReturnsFirstResult: an entry processor whose answer is lost runs once,
// and the retry returns the result of that run (remembered with the answer).
func TestRetriedProcessorReturnsFirstResult(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	registerIncr(t, c)
	ctx := context.Background()
	owner, client := c.Svc(0), c.Svc(1)
	key := keysOwnedBy(t, c, mustMap[string, string](t, owner, "counters"), owner.self, 1, false)[0]
	cm := mustMap[string, int](t, client, "counters")
	for want := 1; want <= 3; want++ {
		lost := loseFirstAnswer(c, client.self, nil)
		if r, err := Execute[int](ctx, cm, "incr", key, 1); err != nil || r != want {
			t.Fatalf("retried increment returned %d, %v; want %d", r, err, want)
		}
		if lost.Load() != 1 {
			t.Fatal("no answer was lost")
		}
	}
	c.Net.SetAnswered(nil)
	if v, err := cm.Get(ctx, key); err != nil || v != 3 {
		t.Fatalf("counter = %d, %v; want 3 (each increment once)", v, err)
	}
}

// TestFirstAttemptAfterItsRetry: the owner serves a retry before the first attempt of the same
// write (the first was still on its way when the caller, having lost the connection, retried):
// the first attempt does not apply the write again, whether the retry changed something or not.
func TestFirstAttemptAfterItsRetry(t *testing.T) {
	c := newCluster(t, 1, 0, nil)
	ctx := context.Background()
	s := c.Svc(0)
	m := mustMap[string, string](t, s, "m")
	vals := testCodec[string]{}
	enc := func(v string) []byte { b, _ := vals.Encode(v); return b }
	kb, p, _ := m.encodeKey("k")
	if err := m.Put(ctx, "k", "v0"); err != nil {
		t.Fatal(err)
	}
	serve := func(id opID, retry bool, expect, value string) opResponse {
		tab, _ := c.Coord.Watch()
		return s.serveOp(ctx, &opRequest{Map: "m", Kind: opReplaceIfSame, Part: int32(p), Epoch: tab.Epoch, Key: kb,
			Expect: enc(expect), Value: enc(value), ID: id, Retry: retry})
	}
	get := func() string {
		v, err := m.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// The retry applies the write; the late first attempt gets the retry's answer.
	id := s.newOpID()
	if r := serve(id, true, "v0", "v1"); r.Status != statusOK || !r.Done {
		t.Fatalf("retry = %+v, want done", r)
	}
	if err := m.Put(ctx, "k", "v0"); err != nil { // back to what the first attempt expects
		t.Fatal(err)
	}
	if r := serve(id, false, "v0", "v1"); r.Status != statusOK || !r.Done {
		t.Fatalf("late first attempt = %+v, want the retry's answer", r)
	}
	if v := get(); v != "v0" {
		t.Fatalf("value = %q: the late first attempt applied the write again", v)
	}

	// The retry changes nothing (the value differs); the late first attempt, which would now
	// succeed, must not apply: its caller was told it did not.
	id = s.newOpID()
	if r := serve(id, true, "other", "v2"); r.Status != statusOK || r.Done {
		t.Fatalf("retry = %+v, want not done", r)
	}
	if err := m.Put(ctx, "k", "other"); err != nil {
		t.Fatal(err)
	}
	if r := serve(id, false, "other", "v2"); r.Status == statusOK {
		t.Fatalf("late first attempt = %+v, want refused", r)
	}
	if v := get(); v != "other" {
		t.Fatalf("value = %q: the late first attempt applied after its retry said no", v)
	}
}
