package topic_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/topic"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustTopic[T any](t *testing.T, m *gridmap.Member, name string, cfg topic.Config) *topic.Topic[T] {
	t.Helper()
	tp, err := topic.New(m.Topics(), name, topic.WithConfig[T](cfg))
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func mustSubscribe[T any](t *testing.T, ctx context.Context, tp *topic.Topic[T], opts ...topic.SubscribeOption) *topic.Subscription[T] {
	t.Helper()
	s, err := tp.Subscribe(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stream checks what a subscription delivers: one sequence number after the other, each either
// a message or counted in a notice, never twice, never out of order. Its read may run on a
// goroutine of its own: it records the first failure (failed) rather than failing the test.
type stream[T any] struct {
	t      *testing.T
	name   string
	next   uint64 // the sequence number expected next
	msgs   []topic.Message[T]
	missed uint64
	failed string
}

// readUntil reads from s until every sequence number below end has been delivered or counted,
// and fails the test if it cannot. It must run on the test's goroutine.
func (st *stream[T]) readUntil(ctx context.Context, s *topic.Subscription[T], end uint64) {
	st.t.Helper()
	if !st.read(ctx, s, end) {
		st.t.Fatal(st.failed)
	}
}

// read is readUntil for any goroutine: it reports false and sets failed when it fails.
func (st *stream[T]) read(ctx context.Context, s *topic.Subscription[T], end uint64) bool {
	for st.next < end {
		select {
		case m, ok := <-s.Messages():
			if !ok {
				st.failed = fmt.Sprintf("%s: subscription ended at %d of %d: %v", st.name, st.next, end, s.Err())
				return false
			}
			if !st.take(m) {
				return false
			}
		case <-ctx.Done():
			st.failed = fmt.Sprintf("%s: at sequence %d of %d when the test's time ran out (%d messages, %d missed)", st.name, st.next, end, len(st.msgs), st.missed)
			return false
		}
	}
	return true
}

func (st *stream[T]) take(m topic.Message[T]) bool {
	switch {
	case m.Seq != st.next:
		st.failed = fmt.Sprintf("%s: got sequence %d (missed %d), want %d", st.name, m.Seq, m.Missed, st.next)
		return false
	case m.Err != nil:
		st.failed = fmt.Sprintf("%s: message %d: %v", st.name, m.Seq, m.Err)
		return false
	case m.Missed > 0:
		st.missed += m.Missed
		st.next += m.Missed
		return true
	}
	st.msgs = append(st.msgs, m)
	st.next++
	return true
}

// noMore checks that nothing else arrives: what was delivered was all.
func (st *stream[T]) noMore(s *topic.Subscription[T]) {
	st.t.Helper()
	select {
	case m := <-s.Messages():
		st.t.Fatalf("%s: unexpected message after the end: %+v", st.name, m)
	default:
	}
}
