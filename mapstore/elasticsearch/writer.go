package elasticsearch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

// errThrottled: the server answered a whole bulk request with 429 (too many requests).
var errThrottled = errors.New("elasticsearch: throttled (HTTP 429)")

// errTooLarge: the server refused a bulk request as larger than its http.max_content_length.
var errTooLarge = errors.New("elasticsearch: request too large (HTTP 413)")

// pacer slows every bulk request of a Store down while the server answers 429: each 429
// doubles the wait before a request (from RetryInitial up to RetryMax), each answer without one
// halves it, down to no wait at all.
type pacer struct {
	initial, max time.Duration

	mu    sync.Mutex
	delay time.Duration
}

func (p *pacer) current() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

// throttled records a 429.
func (p *pacer) throttled() {
	p.mu.Lock()
	p.delay = min(max(2*p.delay, p.initial), p.max)
	p.mu.Unlock()
}

// ok records an answer without a 429.
func (p *pacer) ok() {
	p.mu.Lock()
	if p.delay /= 2; p.delay < p.initial/2 {
		p.delay = 0
	}
	p.mu.Unlock()
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chunks splits ops into bulk requests of at most limit bytes (at least one operation each).
func chunks(ops []op, limit int) [][]op {
	var out [][]op
	start, size := 0, 0
	for i, o := range ops {
		if i > start && size+len(o.line) > limit {
			out = append(out, ops[start:i])
			start, size = i, 0
		}
		size += len(o.line)
	}
	if start < len(ops) {
		out = append(out, ops[start:])
	}
	return out
}

// size returns the bytes of the bulk body of ops.
func size(ops []op) int {
	n := 0
	for _, o := range ops {
		n += len(o.line)
	}
	return n
}

// bulk applies ops with as many bulk requests (at most BulkWorkers of the Store's in flight) as
// their size needs. Operations refused for good are added to rej; those refused for now are sent
// again, after a backoff, up to BulkTries times. An error means some operation may not be
// applied: the caller retries the whole call later (every operation is idempotent).
func (s *Store) bulk(ctx context.Context, ops []op, rej *mapstore.RejectedError) error {
	pending, limit := ops, s.cfg.BulkBytes
	for try := 1; ; try++ {
		chunks := chunks(pending, limit)
		results := make([][]itemResult, len(chunks))
		errs := make([]error, len(chunks))
		var wg sync.WaitGroup
		for i, c := range chunks {
			wg.Go(func() { results[i], errs[i] = s.send(ctx, c) })
		}
		wg.Wait()
		var retry []op
		var last error
		for i, c := range chunks {
			if err := errs[i]; err != nil {
				switch {
				case errors.Is(err, errTooLarge) && len(c) == 1:
					// One document larger than the server takes: it never will.
					rej.Keys = append(rej.Keys, bytes.Clone(c[0].key))
					rej.Reasons = append(rej.Reasons, err)
				case errors.Is(err, errTooLarge):
					limit = max(min(limit, size(c)/2), 1) // smaller requests from now on in this call
					retry, last = append(retry, c...), err
				case errors.Is(err, errThrottled):
					retry, last = append(retry, c...), err
				default:
					return err
				}
				continue
			}
			for j, r := range results[i] {
				switch r.outcome {
				case itemRetry:
					retry, last = append(retry, c[j]), r.err
				case itemReject:
					rej.Keys = append(rej.Keys, bytes.Clone(c[j].key))
					rej.Reasons = append(rej.Reasons, r.err)
				}
			}
		}
		if len(retry) == 0 {
			return nil
		}
		if try >= s.cfg.BulkTries {
			return fmt.Errorf("%w: %d of %d operations refused for now %d times in a row, last: %w", ErrServer, len(retry), len(ops), try, last)
		}
		wait := min(s.cfg.RetryInitial<<(try-1), s.cfg.RetryMax)
		s.log.Debug("elasticsearch: documents refused for now; sending them again", "documents", len(retry), "wait", wait, "err", last)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w: %d operations still to send: %w", ErrUnavailable, len(retry), err)
		}
		pending = retry
	}
}

// send makes one bulk request of ops once a worker slot is free and the pacer allows.
func (s *Store) send(ctx context.Context, ops []op) ([]itemResult, error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for a bulk slot: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-s.slots }()
	if err := sleep(ctx, s.pace.current()); err != nil {
		return nil, fmt.Errorf("%w: slowed down by 429s: %w", ErrUnavailable, err)
	}
	body := make([]byte, 0, size(ops))
	for _, o := range ops {
		body = append(body, o.line...)
	}
	path := "/_bulk"
	if s.cfg.Refresh != "" {
		path += "?refresh=" + s.cfg.Refresh
	}
	status, out, err := s.do(ctx, http.MethodPost, path, body)
	switch {
	case err != nil:
		return nil, err
	case status == http.StatusRequestEntityTooLarge:
		return nil, fmt.Errorf("%w: %w: %d bytes", ErrServer, errTooLarge, len(body))
	case status == http.StatusTooManyRequests:
		s.pace.throttled()
		return nil, fmt.Errorf("%w: %w: %s", ErrServer, errThrottled, errorReason(out))
	case status != http.StatusOK:
		return nil, statusError(http.MethodPost, "/_bulk", status, out)
	}
	results, err := parseBulk(out, ops)
	if err != nil {
		return nil, err
	}
	throttled := false
	for _, r := range results {
		throttled = throttled || r.throttled
	}
	if throttled {
		s.pace.throttled()
	} else {
		s.pace.ok()
	}
	return results, nil
}
