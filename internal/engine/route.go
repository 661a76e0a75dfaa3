package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// maxRouteBackoff bounds the pause between two attempts to route an operation.
const maxRouteBackoff = 50 * time.Millisecond

// do routes an operation to its partition's owner and retries, invisibly to the user, while the
// owner is unknown, unreachable, moving or refusing the epoch, until ctx ends.
//
// Without a deadline on ctx, OperationTimeout bounds the operation. Remote attempts carry it as
// a call timeout rather than as a context of their own, which would cost a timer per operation;
// only attempts served on this member get a context with the deadline. Every remote attempt
// also sends the time left (opRequest.Timeout, a little less: answerMargin), so that the owner
// stops its work for the operation when the caller stops waiting for it. A partition this
// member's table marks lost fails at once with ErrPartitionLost.
func (s *Service) do(ctx context.Context, req *opRequest) (opResponse, error) {
	if req.ops == nil {
		return s.route(ctx, req, time.Time{})
	}
	// Count the operation for its map's statistics (opstats.go); time one in latencySample.
	st, c, timed := req.ops.begin(req.Part, req.Kind)
	if !timed {
		resp, err := s.route(ctx, req, time.Time{})
		if err != nil {
			st.errs[c].Add(1)
		}
		return resp, err
	}
	start := time.Now()
	resp, err := s.route(ctx, req, start)
	st.end(c, time.Since(start), err != nil)
	return resp, err
}

// route is do without the statistics; start is the time the operation began, if do read the
// clock (zero: not read).
func (s *Service) route(ctx context.Context, req *opRequest, start time.Time) (opResponse, error) {
	deadline, hasDeadline := ctx.Deadline()
	var callTimeout time.Duration // 0: ctx's own deadline bounds remote calls
	if !hasDeadline {
		if start.IsZero() {
			start = time.Now()
		}
		deadline = start.Add(s.cfg.OperationTimeout)
	}
	p := partition.ID(req.Part)
	if err := ctx.Err(); err != nil {
		// A context that already ended starts nothing (a local read or write would otherwise
		// be served without looking at it).
		return opResponse{}, fmt.Errorf("%w: partition %d: %w", ErrTimeout, p, err)
	}
	if req.ID.zero() && req.Kind.writes() && req.Kind != opExecuteAll {
		// Every attempt carries the same ID: an owner that applied an earlier one answers as it
		// did then (answers.go).
		req.ID = s.newOpID()
	}
	wait := time.Millisecond
	var last error
	for {
		if s.closed() {
			return opResponse{}, ErrClosed
		}
		t, changed := s.cluster.Watch()
		if lostIn(t, p) {
			return opResponse{}, fmt.Errorf("%w: partition %d (%s)", ErrPartitionLost, p, epochString(t.Partitions[p].LostAt))
		}
		owner := t.Owner(p)
		var resp opResponse
		var err error
		switch {
		case owner == "":
			err = errors.New("partition has no owner yet")
		case owner == s.self:
			if !req.ID.zero() {
				// A retry's age (opRequest.Age). The first attempt's time is the operation's
				// start, when do read it; a local attempt that is retried within this call was
				// not applied (only remote answers and refusals decided before applying are
				// retried), so its time does not matter.
				if req.firstSent.IsZero() {
					req.firstSent = start
				}
				if req.Retry {
					req.Age = retryAge(req.firstSent, time.Now())
				}
			}
			if req.borrowed {
				req.Value, req.borrowed = bytes.Clone(req.Value), false
			}
			req.Epoch, req.deadline = t.Epoch, deadline
			var ok bool
			if resp, ok = s.tryServeLocal(ctx, req, deadline); !ok {
				// The ordinary path may keep the request beyond this call (it waits, queues,
				// retries); it gets a copy, so that the caller's request need not live on the
				// heap for the common case.
				slow := *req
				resp = s.serveLocal(ctx, &slow, deadline, hasDeadline)
			}
			if resp.Status == statusTimeout {
				if cerr := ctx.Err(); cerr != nil {
					// Served here under the caller's own context: say which way it ended.
					return opResponse{}, fmt.Errorf("%w: partition %d: %s: %w", ErrTimeout, p, resp.Msg, cerr)
				}
			}
		default:
			now := time.Now()
			remaining := deadline.Sub(now)
			if remaining <= 0 {
				if last == nil {
					last = context.DeadlineExceeded
				}
				return opResponse{}, fmt.Errorf("%w: partition %d: %w (last attempt: %v)", ErrTimeout, p, context.DeadlineExceeded, last)
			}
			if !hasDeadline {
				callTimeout = remaining
			}
			req.Epoch, req.Timeout = t.Epoch, wireTimeout(remaining-answerMargin(remaining))
			if !req.ID.zero() {
				// The clock read above dates the first attempt, and gives a retry its age.
				if req.firstSent.IsZero() {
					req.firstSent = now
				}
				if req.Retry {
					req.Age = retryAge(req.firstSent, now)
				}
			}
			s.stashFor(t, req)
			resp, err = s.callOwner(ctx, owner, req, callTimeout)
			s.unstash(req)
			if ferr := finalTransportError(err); ferr != nil {
				return opResponse{}, ferr
			}
		}
		if err == nil {
			if !resp.Status.retryable() {
				return resp, nil
			}
			err = resp.Status.err(resp.Msg)
			if resp.Epoch > t.Epoch {
				// The owner knows a newer table: wait for ours to catch up rather than spin.
				wait = time.Millisecond
			}
		}
		last = err
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return opResponse{}, fmt.Errorf("%w: partition %d: %w (last attempt: %v)", ErrTimeout, p, context.DeadlineExceeded, last)
		}
		timer := time.NewTimer(min(wait, remaining))
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return opResponse{}, fmt.Errorf("%w: partition %d: %w (last attempt: %v)", ErrTimeout, p, ctx.Err(), last)
		case <-s.ctx.Done():
			timer.Stop()
			return opResponse{}, ErrClosed
		}
		timer.Stop()
		wait = min(wait*2, maxRouteBackoff)
		req.Retry = !req.ID.zero() // the attempt that failed may have been applied
	}
}

// retryAge is opRequest.Age of a retry sent at now whose operation's first attempt was sent at
// first (zero: not known, when no attempt was sent before: age 0).
func retryAge(first, now time.Time) time.Duration {
	if first.IsZero() {
		return 0
	}
	return min(max(now.Sub(first), 0), maxRetryAge)
}

// serveLocal serves an operation this member owns, under ctx bounded by deadline (which is
// req.deadline).
func (s *Service) serveLocal(ctx context.Context, req *opRequest, deadline time.Time, hasDeadline bool) opResponse {
	if !hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	return s.serveOp(ctx, req)
}

// wireTimeout is an operation's remaining time d as opRequest.Timeout: microseconds, at least
// one (0 would mean no deadline) even when d has passed.
func wireTimeout(d time.Duration) uint64 {
	return uint64(max(d/time.Microsecond, 1))
}

// answerMargin is how much earlier than its caller a remote owner gives up on an operation with
// remaining time d, so that its answer, which says why (back-pressure, backups not answering),
// arrives before the caller's own deadline would replace it with a bare timeout: a tenth of d,
// at most maxAnswerMargin.
func answerMargin(d time.Duration) time.Duration {
	return min(d/10, maxAnswerMargin)
}

// maxAnswerMargin bounds answerMargin: the time an answer needs to come back.
const maxAnswerMargin = 50 * time.Millisecond

// maxWireTimeout bounds the time a received request may take, so that a corrupt Timeout cannot
// overflow a deadline.
const maxWireTimeout = 24 * time.Hour

// setDeadline sets the deadline of a request received at now from its Timeout.
func (r *opRequest) setDeadline(now time.Time) {
	if r.Timeout == 0 {
		return
	}
	r.deadline = now.Add(time.Duration(min(r.Timeout, uint64(maxWireTimeout/time.Microsecond))) * time.Microsecond)
}

// lostIn reports whether table t marks partition p lost: its data is gone and it is not served
// until the application resets it.
func lostIn(t *partition.Table, p partition.ID) bool {
	return p >= 0 && int(p) < len(t.Partitions) && t.Partitions[p].Lost
}

// callOwner sends an operation to a remote owner; timeout > 0 bounds the call.
func (s *Service) callOwner(ctx context.Context, owner partition.MemberID, req *opRequest, timeout time.Duration) (opResponse, error) {
	addr, ok := s.cluster.MemberAddr(owner)
	if !ok {
		return opResponse{}, fmt.Errorf("dmap: no address for member %s", owner)
	}
	msg, err := encodeOpRequest(req)
	if err != nil {
		return opResponse{}, err
	}
	var out transport.Message
	if timeout > 0 {
		out, err = s.caller.CallTimeout(ctx, addr, msg, timeout)
	} else {
		out, err = s.caller.Call(ctx, addr, msg)
	}
	if err != nil {
		return opResponse{}, err
	}
	resp, err := decodeResponse(out)
	resp.owned = true // the transport hands received messages to the receiver
	return resp, err
}

// finalTransportError returns the error to give the user when a call failed in a way that
// retrying cannot fix (the request itself is refused), or nil when the call may be retried.
func finalTransportError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, transport.ErrFrameTooLarge) {
		return fmt.Errorf("%w: %w", ErrValueTooLarge, err)
	}
	// An unknown message type means the member is still starting (its handlers come next), so
	// only other refusals are final.
	var re *transport.RemoteError
	if errors.As(err, &re) && re.Code != transport.CodeUnknownType {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}
