package queue

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// Items of a removal whose taker gave up.
//
// A Poll, Take or Drain returns when its context ends, but its removal (a poll on the owner)
// may have been applied by then, its answer on the way: the items are gone from the queue and
// no caller has them. So take runs the poll on a goroutine of the member's engine, apart from
// the caller's context, and hands its answer over (handOff); when the caller has given up
// first, or the poll's recovery window passed without an answer, the goroutine keeps the
// removal going until it is answered and puts its items back at the head (giveBack, the
// processor unpoll), as one operation sent again until it is acknowledged (the owner remembers
// it: the items go back once).
//
// Once the poll's answer is in, this member holds the only copy of its items, so giveBack
// never gives up while the member runs: it tries again, backing off up to giveBackMaxWait
// between tries, through owner changes, lost partitions and refusals alike. What it cannot
// settle it counts (GiveBacks) and logs at Error: items still held when the member closes
// (Lost), and removals whose outcome the owner no longer knows (Unknown: ErrOutcomeUnknown, or
// the member closed before the poll was answered), each of which may have removed items.

// giveBackMaxWait bounds the wait between two tries of a give-back: short enough that items
// return soon after a fault heals, long enough not to flood an owner that refuses them.
const giveBackMaxWait = time.Second

// giveBackLogEvery is how often a give-back that keeps failing logs (at Warn) that it still
// holds items.
const giveBackLogEvery = 30 * time.Second

// GiveBackStats counts what a member did with the items of removals whose takers gave up
// (Service.GiveBacks): since the member started.
type GiveBackStats struct {
	// Returned counts the items put back at a queue's head.
	Returned uint64
	// Holding is the number of items the member holds now, trying to put them back.
	Holding uint64
	// Lost counts the items the member held, and no other member had, when it closed: they
	// are gone.
	Lost uint64
	// Unknown counts the removals whose outcome this member could not learn: the owner no
	// longer remembered whether the poll removed items (ErrOutcomeUnknown), or the member
	// closed before the poll was answered. Each may have removed items that reached nobody.
	Unknown uint64
}

// GiveBacks returns the counts of the items of removals whose takers gave up. A health check
// or a test harness reads Lost and Unknown: anything but zero means items may have been
// removed from a queue without reaching a caller.
func (s *Service) GiveBacks() GiveBackStats {
	return GiveBackStats{
		Returned: s.returned.Load(),
		Holding:  s.holding.Load(),
		Lost:     s.lost.Load(),
		Unknown:  s.unknown.Load(),
	}
}

// handOff passes a poll's answer from the goroutine that runs it to the caller that waits for
// it, unless the caller gave up first: exactly one of deliver and abandon succeeds.
type handOff struct {
	mu        sync.Mutex
	abandoned bool
	delivered bool
	done      chan struct{} // closed by a successful deliver
	res       []byte
	err       error
}

// deliver hands res and err to the caller and reports true, or reports false when the caller
// gave up: the items in res are then the goroutine's to put back.
func (h *handOff) deliver(res []byte, err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.abandoned {
		return false
	}
	h.delivered, h.res, h.err = true, res, err
	close(h.done)
	return true
}

// abandon reports true when the caller gives up before the answer was delivered (deliver then
// fails), false when it was delivered (read it after done).
func (h *handOff) abandon() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.delivered {
		return false
	}
	h.abandoned = true
	return true
}

// giveBack settles a poll of raw's partition p (the operation a, of argument arg) whose taker
// gave up: res and err are the poll's answer so far. A poll not yet answered (a timeout) is
// sent again until it is; its items are then put back at the head of the queue. It returns when
// done or when ctx (the engine's) ends, counting what it could not settle (GiveBackStats).
func (s *Service) giveBack(ctx context.Context, raw *engine.Map, p partition.ID, a *engine.Attempt, arg []byte, res []byte, err error) {
	log := s.e.Logger().With("queue", raw.Name())
	if err != nil && len(res) == 0 && errors.Is(err, engine.ErrTimeout) && ctx.Err() == nil {
		// Unanswered: the poll may have been applied. Send it again (the same operation)
		// until it is answered.
		res, err = s.untilSettled(ctx, log, "a removal its taker gave up on", func() ([]byte, error) {
			return raw.ExecutePartitionAttempt(ctx, a, procPoll, p, arg)
		}, func(res []byte, err error) bool {
			return len(res) > 0 || err == nil || !errors.Is(err, engine.ErrTimeout)
		})
	}
	if err != nil && len(res) == 0 {
		if !errors.Is(err, engine.ErrTimeout) && !errors.Is(err, engine.ErrClosed) && !errors.Is(err, engine.ErrOutcomeUnknown) {
			return // refused: nothing removed
		}
		s.unknown.Add(1)
		log.Error("queue: a removal its taker gave up on ended without an answer: its items, if it removed any, are lost", "err", err)
		return
	}
	items, derr := decodeItems(res)
	if derr != nil || len(items) == 0 {
		return
	}
	n := uint64(len(items))
	s.holding.Add(n)
	defer s.holding.Add(^(n - 1))
	enc := encodeItems(items)
	put := new(engine.Attempt)
	_, err = s.untilSettled(ctx, log.With("items", n), "putting back the items of a taker that gave up", func() ([]byte, error) {
		res, err := raw.ExecutePartitionAttempt(ctx, put, procUnpoll, p, enc)
		if errors.Is(err, engine.ErrOutcomeUnknown) && len(res) == 0 {
			// The owner forgot whether an earlier try put them back: put them back
			// again, as a new operation (a duplicate at worst, never a loss).
			put = new(engine.Attempt)
		}
		return res, err
	}, func(res []byte, err error) bool { return err == nil || len(res) > 0 })
	if err != nil && ctx.Err() != nil {
		s.lost.Add(n)
		log.Error("queue: the member closed holding items whose taker gave up, before it could put them back: they are lost", "err", err)
		return
	}
	s.returned.Add(n)
}

// untilSettled calls try until settled accepts its answer or ctx ends, waiting between tries
// (backing off from 1 ms to giveBackMaxWait); it logs every giveBackLogEvery that it is still
// trying, what says what.
func (s *Service) untilSettled(ctx context.Context, log *slog.Logger, what string, try func() ([]byte, error), settled func([]byte, error) bool) ([]byte, error) {
	start, logged := time.Now(), time.Now()
	for wait := time.Millisecond; ; wait = min(2*wait, giveBackMaxWait) {
		res, err := try()
		if settled(res, err) || ctx.Err() != nil {
			return res, err
		}
		if time.Since(logged) >= giveBackLogEvery {
			logged = time.Now()
			log.Warn("queue: still trying: "+what, "for", time.Since(start).Round(time.Second), "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// retryAttempt runs a's processor proc until it is answered: an attempt that times out (the
// operation timeout bounds each when ctx has no deadline) is sent again at once as the same
// operation, for up to recovery or until ctx ends.
func retryAttempt(ctx context.Context, raw *engine.Map, a *engine.Attempt, proc string, p partition.ID, arg []byte, recovery time.Duration) ([]byte, error) {
	giveUp := time.Now().Add(recovery)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		res, err := raw.ExecutePartitionAttempt(ctx, a, proc, p, arg)
		if err == nil || len(res) > 0 || !errors.Is(err, engine.ErrTimeout) || ctx.Err() != nil || time.Now().After(giveUp) {
			return res, err
		}
		// Soon: the owner remembers the answer for MaxRetryWindow (unless its partition is
		// written very fast); a retry it no longer can answer fails with ErrOutcomeUnknown.
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}
