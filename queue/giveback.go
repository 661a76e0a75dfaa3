package queue

import (
	"context"
	"errors"
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
// first, the goroutine puts the items back at the head (giveBack, the processor unpoll), as one
// operation sent again until it is acknowledged (the owner remembers it: the items go back
// once). The poll and the return each try for up to takeRecovery; a member that closes
// meanwhile, or an owner unreachable for that long, leaves the items removed, which giveBack
// logs as an error with their count.

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

// giveBack puts the items of a poll of raw's partition p whose taker gave up (res and err, the
// poll's answer) back at the head of the queue.
func (s *Service) giveBack(ctx context.Context, raw *engine.Map, p partition.ID, res []byte, err error) {
	if err != nil && len(res) == 0 {
		if !errors.Is(err, engine.ErrTimeout) && !errors.Is(err, engine.ErrClosed) && !errors.Is(err, engine.ErrOutcomeUnknown) {
			return // refused: nothing removed
		}
		s.e.Logger().Error("queue: a removal its taker gave up on did not complete: its items, if it removed any, are lost",
			"queue", raw.Name(), "err", err)
		return
	}
	items, derr := decodeItems(res)
	if derr != nil || len(items) == 0 {
		return
	}
	if res, err := retryAttempt(ctx, raw, new(engine.Attempt), procUnpoll, p, encodeItems(items)); err != nil && len(res) == 0 {
		s.e.Logger().Error("queue: items whose taker gave up could not be put back: lost",
			"queue", raw.Name(), "items", len(items), "err", err)
		return
	}
	s.returned.Add(uint64(len(items)))
}

// retryAttempt runs a's processor proc until it is answered: an attempt that times out (the
// operation timeout bounds each when ctx has no deadline) is sent again at once as the same
// operation, for up to takeRecovery or until ctx ends.
func retryAttempt(ctx context.Context, raw *engine.Map, a *engine.Attempt, proc string, p partition.ID, arg []byte) ([]byte, error) {
	giveUp := time.Now().Add(takeRecovery)
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
