package gridmap

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/queue"
)

// The queue workload of the combined nemesis (jepsen_test.go): clients on every host offer
// unique items to a few queues and take them; after the heal the queues are drained. Every
// acknowledged offer must have been taken (by a client or the final drain); an item taken
// twice is a duplicate, which docs/queue.md allows only for an Offer retried after its
// partition's owner forgot the answer: duplicates are counted and reported, not failed.

// jepsenQueues is the number of queues of the workload (each in the partition of its name,
// so that faults hit their owners differently).
const jepsenQueues = 3

// queueHistory is what the queue workload saw.
type queueHistory struct {
	// Offered is every offered item: true when the offer was acknowledged, false when its
	// outcome is unknown (an error or no answer).
	Offered map[string]bool `json:"offered"`
	// Taken counts, per item, how many times a take or the final drain returned it.
	Taken map[string]int `json:"taken"`
	// Takes counts the takes by outcome: an item, the queue empty for the take's wait, a
	// failure answered by the member (nothing was removed: docs/queue.md).
	TakesOK, TakesEmpty, TakesFailed int
	// Unanswered counts the takes and drains whose member never answered (it was killed or
	// stalled while the call ran): each may have removed an item that no caller saw.
	Unanswered int
	// TakesUnknown counts the takes and drains that failed with queue.ErrOutcomeUnknown (a
	// removal sent again after the owner forgot whether the first call removed items): like
	// unanswered ones, each may have removed items that no caller saw.
	TakesUnknown int
	// TakeErrors counts the takes' errors (but the empty queue's) by message, numbers elided,
	// to tell why a take failed.
	TakeErrors map[string]int `json:"take_errors"`
	// GiveBacks sums the members' give-backs (queue.Service.GiveBacks: the items of takes
	// whose callers gave up): those of killed members as read just before the kill, with the
	// items they held then counted as lost, and those of the live members at the end. Items
	// the members report lost, and removals whose outcome they could not learn, excuse lost
	// items as unanswered takes do: they are losses the members saw, not the checker's guess.
	GiveBacks queue.GiveBackStats `json:"give_backs"`
}

// addGiveBacks adds a member's give-backs to the history; killed says the member is about to
// be killed, so the items it holds are lost.
func (h *queueHistory) addGiveBacks(st queue.GiveBackStats, killed bool) {
	h.GiveBacks.Returned += st.Returned
	h.GiveBacks.Lost += st.Lost
	h.GiveBacks.Unknown += st.Unknown
	if killed {
		h.GiveBacks.Lost += st.Holding
	} else {
		h.GiveBacks.Holding += st.Holding
	}
}

// excused is how many lost items the history explains: takes unanswered or answered
// ErrOutcomeUnknown (one item each), removals of unknown outcome the members' give-backs
// reported (one each), and the items the give-backs reported lost.
func (h *queueHistory) excused() int {
	return h.Unanswered + h.TakesUnknown + int(h.GiveBacks.Unknown+h.GiveBacks.Lost)
}

// giveBackSummary is the give-backs' part of the run's summary.
func (h *queueHistory) giveBackSummary() string {
	g := h.GiveBacks
	return fmt.Sprintf("queue give-backs: %d items returned, %d lost by members (closed or killed holding them), %d removals of unknown outcome, %d items still held at the end",
		g.Returned, g.Lost, g.Unknown, g.Holding)
}

// queueVerdict is the queue checker's result.
type queueVerdict struct {
	Acked, Unknown int
	UnknownTaken   int      // offers of unknown outcome whose item was taken: they happened
	Lost           []string // acknowledged, never taken
	Duplicated     []string // "item xN": taken N > 1 times
	Extra          int      // takes beyond the first of every item
	NeverOffered   []string // taken but never offered
}

// failed reports whether the verdict is a violation: an item taken that was never offered, or
// more acknowledged items lost than the history excuses (takes left unanswered or answered
// ErrOutcomeUnknown, each of which may have removed one item that no caller saw, and said so;
// items and removals the members' give-backs reported lost or unknown: excused).
func (v queueVerdict) failed(h *queueHistory) bool {
	return len(v.NeverOffered) > 0 || len(v.Lost) > h.excused()
}

// check computes the verdict of the history.
func (h *queueHistory) check() queueVerdict {
	var v queueVerdict
	for _, item := range slices.Sorted(maps.Keys(h.Offered)) {
		n := h.Taken[item]
		switch acked := h.Offered[item]; {
		case acked:
			v.Acked++
			if n == 0 {
				v.Lost = append(v.Lost, item)
			}
		default:
			v.Unknown++
			if n > 0 {
				v.UnknownTaken++
			}
		}
	}
	for _, item := range slices.Sorted(maps.Keys(h.Taken)) {
		n := h.Taken[item]
		if _, ok := h.Offered[item]; !ok {
			v.NeverOffered = append(v.NeverOffered, item)
		}
		if n > 1 {
			v.Duplicated = append(v.Duplicated, fmt.Sprintf("%s x%d", item, n))
			v.Extra += n - 1
		}
	}
	return v
}

func (v queueVerdict) String() string {
	return fmt.Sprintf("%d offers acknowledged, %d unknown (%d of them taken), lost %d, duplicated %d (%d extra copies), never offered %d",
		v.Acked, v.Unknown, v.UnknownTaken, len(v.Lost), len(v.Duplicated), v.Extra, len(v.NeverOffered))
}

// runQueue runs n clients of the queue workload: client c's i-th operation, on queue
// jq((c+i) mod jepsenQueues), takes an item (waiting up to 1 s) two times in five and offers the
// unique item q.c.i otherwise, so the queues grow slowly and the final drain has work.
func (j *jepsen) runQueue(n int) (stop func()) {
	j.mu.Lock()
	j.queue = &queueHistory{Offered: map[string]bool{}, Taken: map[string]int{}, TakeErrors: map[string]int{}}
	j.mu.Unlock()
	return j.runPaced(n, 25*time.Millisecond, func(c, i int) faultRequest {
		q := fmt.Sprintf("jq%d", (c+i)%jepsenQueues)
		if i%5 == 1 || i%5 == 3 {
			return faultRequest{Op: "take", Key: q, Timeout: time.Second}
		}
		return faultRequest{Op: "offer", Key: q, Value: fmt.Sprintf("q.%d.%d", c, i)}
	}, func(req faultRequest, rep faultReply, err error) { j.queue.record(req, rep, err) })
}

// record adds one operation of the queue workload to the history: its request, the member's
// reply, and err, the call's error (errFaultNoAnswer: the member never answered).
func (h *queueHistory) record(req faultRequest, rep faultReply, err error) {
	switch {
	case req.Op == "offer":
		h.Offered[req.Value] = err == nil
	case err == nil:
		h.TakesOK++
		h.Taken[rep.Value]++
	case errors.Is(err, errFaultNoAnswer):
		h.Unanswered++
	case rep.Unknown:
		h.TakesUnknown++ // it may have removed an item: counted like an unanswered take
		h.TakeErrors[digits.ReplaceAllString(rep.Err, "N")]++
	case rep.Timeout && strings.Contains(rep.Err, "waiting for an item"):
		h.TakesEmpty++ // the queue stayed empty (or its owner out of reach) for the wait
	default:
		h.TakesFailed++
		h.TakeErrors[digits.ReplaceAllString(rep.Err, "N")]++
	}
}

// digits matches the numbers of an error message.
var digits = regexp.MustCompile(`[0-9]+`)

// checkQueue drains every queue through the live members (retrying until a drain succeeds,
// which leaves the queue empty, or the settle time is up), adds the drained items to the
// history and returns the verdict, with the queues that could not be drained.
func (j *jepsen) checkQueue() (v queueVerdict, undrained []string) {
	r := j.r
	deadline := time.Now().Add(r.settle)
	live := r.live()
	j.waitGiveBacks(live, deadline)
	i := 0
	for q := range jepsenQueues {
		name := fmt.Sprintf("jq%d", q)
		for {
			m := live[i%len(live)]
			i++
			rep, err := m.call(faultRequest{Op: "qdrain", Key: name, Timeout: r.opTimeout}, r.opTimeout+30*time.Second)
			j.mu.Lock()
			for _, item := range rep.Values { // removed even when the drain failed later
				j.queue.Taken[item]++
			}
			if errors.Is(err, errFaultNoAnswer) {
				j.queue.Unanswered++
			} else if rep.Unknown {
				j.queue.TakesUnknown++
			}
			j.mu.Unlock()
			if err == nil && rep.OK {
				break
			}
			if time.Now().After(deadline) {
				undrained = append(undrained, fmt.Sprintf("%s: drain failed: %v %s", name, err, rep.Err))
				break
			}
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.queue.check(), undrained
}

// waitGiveBacks waits (until deadline) for the live members to hold no items of takers that
// gave up, so that the final drain finds them in the queues, then adds the members'
// give-backs to the history.
func (j *jepsen) waitGiveBacks(live []*faultMember, deadline time.Time) {
	var sts []queue.GiveBackStats
	for {
		sts = sts[:0]
		holding := uint64(0)
		for _, m := range live {
			st, err := m.giveBacks()
			if err != nil {
				j.logf("member %s: give-backs unreadable: %v", m.id[:8], err)
				continue
			}
			sts = append(sts, st)
			holding += st.Holding
		}
		if holding == 0 || time.Now().After(deadline) {
			break
		}
		pause(100 * time.Millisecond) // a poll of a condition with a deadline
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, st := range sts {
		j.queue.addGiveBacks(st, false)
	}
}

// The queue checker must be able to fail: an acknowledged item never taken is lost, an item
// taken twice is a duplicate, an item nobody offered is a violation, and a lost item is only
// excused by a take whose member never answered.
func TestJepsenQueueCheckerFindsLossAndDuplicates(t *testing.T) {
	h := &queueHistory{
		Offered:    map[string]bool{"a": true, "b": true, "c": false, "d": false, "e": true},
		Taken:      map[string]int{"a": 1, "b": 2, "d": 1},
		TakeErrors: map[string]int{},
	}
	v := h.check()
	if v.Acked != 3 || v.Unknown != 2 || v.UnknownTaken != 1 {
		t.Errorf("counts: %+v", v)
	}
	if !slices.Equal(v.Lost, []string{"e"}) || !slices.Equal(v.Duplicated, []string{"b x2"}) || v.Extra != 1 || len(v.NeverOffered) != 0 {
		t.Errorf("verdict %+v: want e lost, b duplicated", v)
	}
	if !v.failed(h) {
		t.Error("an acknowledged item lost passed the checker")
	}
	h.Unanswered = 1
	if v.failed(h) {
		t.Error("one lost item with one take unanswered (its member died mid-take) failed the checker")
	}
	// A take answered ErrOutcomeUnknown excuses a lost item as an unanswered one does; a take
	// that failed otherwise (nothing removed) does not.
	h.Unanswered = 0
	h.record(faultRequest{Op: "take", Key: "jq0"}, faultReply{Err: "queue jq0: failed: dmap: partition lost"}, errors.New("member error"))
	if !v.failed(h) || h.TakesFailed != 1 {
		t.Errorf("a take that failed removing nothing excused a lost item: %+v", h)
	}
	h.record(faultRequest{Op: "take", Key: "jq0"}, faultReply{Err: "queue jq0: dmap: outcome unknown", Unknown: true}, errors.New("member error"))
	if v.failed(h) || h.TakesUnknown != 1 || h.TakesFailed != 1 {
		t.Errorf("one lost item with one take of unknown outcome failed the checker: %+v", h)
	}
	// An item a member's give-back reported lost (or a removal of unknown outcome) excuses a
	// lost item; one returned or still held does not.
	h.TakesUnknown = 0
	h.addGiveBacks(queue.GiveBackStats{Returned: 3, Holding: 1}, false)
	if !v.failed(h) {
		t.Errorf("give-backs that returned or hold items excused a lost item: %+v", h.GiveBacks)
	}
	h.addGiveBacks(queue.GiveBackStats{Holding: 1}, true) // killed holding one item
	if v.failed(h) || h.GiveBacks.Lost != 1 || h.GiveBacks.Holding != 1 {
		t.Errorf("an item a killed member held did not excuse a lost item: %+v", h.GiveBacks)
	}
	h.GiveBacks = queue.GiveBackStats{Unknown: 1}
	if v.failed(h) {
		t.Errorf("a give-back's removal of unknown outcome did not excuse a lost item: %+v", h.GiveBacks)
	}
	h.GiveBacks = queue.GiveBackStats{}
	h.TakesUnknown, h.Unanswered = 0, 1
	h.Taken["e"], h.Taken["z"] = 1, 1
	v = h.check()
	if len(v.Lost) != 0 || !slices.Equal(v.NeverOffered, []string{"z"}) || !v.failed(h) {
		t.Errorf("an item never offered passed the checker: %+v", v)
	}
	delete(h.Taken, "z")
	if v = h.check(); v.failed(h) || len(v.Duplicated) != 1 {
		t.Errorf("duplicates alone failed the checker or went unreported: %+v", v)
	}
}

// A final drain answers with every item left in a queue, one line far longer than a default
// line scanner takes: the 30-minute run of docs/faults.md counted 38,397 drained items as lost
// because the harness dropped that line (and with it the member). The drain's answer must come
// back whole.
func TestFaultMemberLongAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member process")
	}
	start := time.Now()
	fm := startFaultMembers(t, 1, nil, 0, func() time.Duration { return time.Since(start) })[0]
	const items = 12000 // about 180 KB of answer
	want := make(map[string]bool, items)
	for i := range items {
		v := fmt.Sprintf("q.%d.%d", i%5, i)
		rep, err := fm.call(faultRequest{Op: "offer", Key: "jq", Value: v, Timeout: 10 * time.Second}, 40*time.Second)
		if err != nil || rep.Err != "" {
			t.Fatalf("offer %s: %v %s", v, err, rep.Err)
		}
		want[v] = true
	}
	rep, err := fm.call(faultRequest{Op: "qdrain", Key: "jq", Timeout: 30 * time.Second}, time.Minute)
	if err != nil || !rep.OK {
		t.Fatalf("drain: %v %s", err, rep.Err)
	}
	if len(rep.Values) != items {
		t.Fatalf("drain answered %d items, want %d", len(rep.Values), items)
	}
	for _, v := range rep.Values {
		if !want[v] {
			t.Fatalf("drain answered %q, never offered or twice", v)
		}
		delete(want, v)
	}
	// The member reports its give-backs (the Jepsen summary counts them): none here.
	if st, err := fm.giveBacks(); err != nil || st != (queue.GiveBackStats{}) {
		t.Fatalf("give-backs: %+v, %v; want none", st, err)
	}
}

// noteKilledGiveBacks adds the give-backs of member m, about to be killed, to the queue
// history: the items it holds die with it (lost by the member). A take that gave up between
// this read and the kill is not counted.
func (j *jepsen) noteKilledGiveBacks(m *faultMember) {
	st, err := m.giveBacks()
	if err != nil {
		j.logf("member %s: give-backs unreadable before its kill: %v", m.id[:8], err)
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.queue != nil {
		j.queue.addGiveBacks(st, true)
	}
}
