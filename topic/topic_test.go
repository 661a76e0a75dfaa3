package topic_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/gridmap/gridmap/gridmaptest"
	"github.com/gridmap/gridmap/topic"
)

type note struct {
	P, I int // publisher, its counter
}

// 3 members, 4 publishers and 4 subscribers spread over them: every subscriber receives every
// message once, in one order that keeps each publisher's.
func TestEverySubscriberReceivesEveryMessageOnceInOrder(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3)
	ctx := testContext(t)
	const publishers, subscribers, each = 4, 4, 300
	var subs []*topic.Subscription[note]
	for i := range subscribers {
		tp := mustTopic[note](t, c.Member(i%3), "news", topic.Config{})
		subs = append(subs, mustSubscribe(t, ctx, tp))
	}
	// The subscribers read while the publishers publish.
	streams := make([]*stream[note], subscribers)
	var readers sync.WaitGroup
	for i, s := range subs {
		streams[i] = &stream[note]{t: t, name: fmt.Sprint("subscriber ", i), next: 1}
		readers.Go(func() { streams[i].read(ctx, s, publishers*each+1) })
	}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		tp := mustTopic[note](t, c.Member((p+1)%3), "news", topic.Config{})
		wg.Go(func() {
			for i := range each {
				if _, err := tp.Publish(ctx, note{P: p, I: i}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	readers.Wait()
	for i, s := range subs {
		st := streams[i]
		if st.failed != "" {
			t.Fatal(st.failed)
		}
		if st.missed != 0 {
			t.Fatalf("%s missed %d messages", st.name, st.missed)
		}
		next := make([]int, publishers)
		for _, m := range st.msgs {
			if m.Value.I != next[m.Value.P] {
				t.Fatalf("%s: publisher %d's message %d arrived when %d was due", st.name, m.Value.P, m.Value.I, next[m.Value.P])
			}
			next[m.Value.P]++
		}
		st.noMore(s)
		t.Logf("%s: %+v", st.name, s.Stats())
	}
}

// A subscriber that does not read loses what its buffer and the ring cannot hold, and is told
// the exact count: every sequence number is delivered or counted once.
func TestBlockedSubscriberIsToldExactlyWhatItMissed(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3)
	ctx := testContext(t)
	tp := mustTopic[int](t, c.Member(0), "ticks", topic.Config{})
	s := mustSubscribe(t, ctx, tp, topic.WithBuffer(8))
	pub := mustTopic[int](t, c.Member(1), "ticks", topic.Config{})
	const n = 2000
	var last uint64
	for i := range n {
		seq, err := pub.Publish(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	if last != n {
		t.Fatalf("the last message got sequence %d, want %d", last, n)
	}
	st := &stream[int]{t: t, name: "blocked subscriber", next: 1}
	st.readUntil(ctx, s, n+1)
	if st.missed == 0 || st.missed+uint64(len(st.msgs)) != n {
		t.Fatalf("delivered %d and missed %d of %d", len(st.msgs), st.missed, n)
	}
	// The buffer's messages (the oldest) and the ring's (the newest) were delivered; what came
	// between was counted.
	if len(st.msgs) < topic.DefaultPlainRing {
		t.Fatalf("delivered %d messages, want at least the ring's %d", len(st.msgs), topic.DefaultPlainRing)
	}
	for _, m := range st.msgs {
		if uint64(m.Value)+1 != m.Seq {
			t.Fatalf("message %d carries %d", m.Seq, m.Value)
		}
	}
	if got := s.Stats(); got.Missed != st.missed || got.Delivered != uint64(len(st.msgs)) {
		t.Fatalf("stats %+v, the reader saw %d delivered and %d missed", got, len(st.msgs), st.missed)
	}
	st.noMore(s)
}

// A reliable topic's slow subscriber loses nothing the ring still holds.
func TestReliableBlockedSubscriberCatchesUpFromTheRing(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3)
	ctx := testContext(t)
	cfg := topic.Config{Reliable: true, RingCapacity: 5000}
	s := mustSubscribe(t, ctx, mustTopic[int](t, c.Member(2), "audit", cfg), topic.WithBuffer(4))
	pub := mustTopic[int](t, c.Member(0), "audit", cfg)
	const n = 1500
	for i := range n {
		if _, err := pub.Publish(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	st := &stream[int]{t: t, name: "reliable subscriber", next: 1}
	st.readUntil(ctx, s, n+1)
	if st.missed != 0 || len(st.msgs) != n {
		t.Fatalf("delivered %d and missed %d of %d", len(st.msgs), st.missed, n)
	}
	if s.Stats().Repaired == 0 {
		t.Fatal("nothing was read from the ring: the buffer of 4 never overflowed, so the test proved nothing")
	}
}

// A reliable subscriber that unsubscribed for a moment resumes without a gap, here on another
// member; one that comes back too late is told how many it lost.
func TestReliableSubscriberResumesWithoutAGap(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3)
	ctx := testContext(t)
	cfg := topic.Config{Reliable: true, RingCapacity: 100}
	pub := mustTopic[int](t, c.Member(0), "orders", cfg)
	s := mustSubscribe(t, ctx, mustTopic[int](t, c.Member(1), "orders", cfg))
	for i := range 30 {
		if _, err := pub.Publish(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	st := &stream[int]{t: t, name: "first subscription", next: 1}
	st.readUntil(ctx, s, 21) // read 20 of the 30
	s.Close()
	resume := s.Next()
	if resume != 21 {
		t.Fatalf("Next after reading 20 = %d, want 21", resume)
	}
	for i := 30; i < 80; i++ { // published while away
		if _, err := pub.Publish(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	s2 := mustSubscribe(t, ctx, mustTopic[int](t, c.Member(2), "orders", cfg), topic.FromSequence(resume))
	st2 := &stream[int]{t: t, name: "resumed subscription", next: resume}
	st2.readUntil(ctx, s2, 81)
	if st2.missed != 0 || len(st2.msgs) != 60 || st2.msgs[0].Value != 20 {
		t.Fatalf("resumed: %d messages from %v, %d missed; want 60 from 20, none missed", len(st2.msgs), st2.msgs[0].Value, st2.missed)
	}

	// 150 more: the ring of 100 holds 81..230 no more from 131 on; starting at 81 misses 50.
	for i := 80; i < 230; i++ {
		if _, err := pub.Publish(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	oldest, next, err := pub.Bounds(ctx)
	if err != nil || oldest != 131 || next != 231 {
		t.Fatalf("Bounds = [%d, %d), %v; want [131, 231)", oldest, next, err)
	}
	s3 := mustSubscribe(t, ctx, mustTopic[int](t, c.Member(1), "orders", cfg), topic.FromSequence(81))
	st3 := &stream[int]{t: t, name: "late subscription", next: 81}
	st3.readUntil(ctx, s3, 231)
	if st3.missed != 50 || len(st3.msgs) != 100 {
		t.Fatalf("late: %d messages, %d missed; want 100 and 50", len(st3.msgs), st3.missed)
	}
}

// A member that joins reads the topic from a sequence number, then follows it live.
func TestJoiningMemberResumesFromASequence(t *testing.T) {
	c := gridmaptest.NewCluster(t, 2)
	ctx := testContext(t)
	cfg := topic.Config{Reliable: true}
	pub := mustTopic[string](t, c.Member(0), "deploys", cfg)
	for i := range 50 {
		if _, err := pub.Publish(ctx, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	j := c.Join()
	s := mustSubscribe(t, ctx, mustTopic[string](t, c.Member(j), "deploys", cfg), topic.FromOldest())
	for i := 50; i < 100; i++ {
		if _, err := pub.Publish(ctx, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	st := &stream[string]{t: t, name: "joined member", next: 1}
	st.readUntil(ctx, s, 101)
	for i, m := range st.msgs {
		if m.Value != fmt.Sprint("v", i) {
			t.Fatalf("message %d = %q, want v%d", m.Seq, m.Value, i)
		}
	}
	if len(st.msgs) != 100 {
		t.Fatalf("%d messages, want 100", len(st.msgs))
	}
}

// PublishBytes publishes by name, with the ring the topic has; a Topic[string] reads it.
func TestPublishBytesByName(t *testing.T) {
	c := gridmaptest.NewCluster(t, 2)
	ctx := testContext(t)
	cfg := topic.Config{Reliable: true, RingCapacity: 3}
	tp := mustTopic[string](t, c.Member(0), "command", cfg)
	if _, err := tp.Publish(ctx, "start"); err != nil { // sets the ring's capacity
		t.Fatal(err)
	}
	s := mustSubscribe(t, ctx, tp, topic.FromOldest())
	st := &stream[string]{t: t, name: "command", next: 1}
	st.readUntil(ctx, s, 2) // "start": the rest does not fit the ring at once
	for _, cmd := range []string{"a", "b", "c", "d"} {
		if _, err := c.Member(1).Topics().PublishBytes(ctx, "command", []byte(cmd)); err != nil {
			t.Fatal(err)
		}
	}
	st.readUntil(ctx, s, 6)
	var got []string
	for _, m := range st.msgs {
		got = append(got, m.Value)
	}
	if fmt.Sprint(got) != "[start a b c d]" {
		t.Fatalf("got %v", got)
	}
	if oldest, next, err := tp.Bounds(ctx); err != nil || next-oldest != 3 {
		t.Fatalf("the ring holds [%d, %d) (%v): PublishBytes did not keep its capacity of 3", oldest, next, err)
	}
	if _, err := c.Member(1).Topics().PublishBytes(ctx, "", nil); !errors.Is(err, topic.ErrInvalidConfig) {
		t.Fatalf("empty name: %v", err)
	}
}

// PublishAll numbers a batch consecutively: no other publisher's message comes between them.
func TestPublishAllKeepsABatchTogether(t *testing.T) {
	c := gridmaptest.NewCluster(t, 2)
	ctx := testContext(t)
	const publishers, batches, size = 3, 20, 10
	s := mustSubscribe(t, ctx, mustTopic[note](t, c.Member(1), "batches", topic.Config{}))
	st := &stream[note]{t: t, name: "subscriber", next: 1}
	done := make(chan bool)
	go func() { done <- st.read(ctx, s, publishers*batches*size+1) }()
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		tp := mustTopic[note](t, c.Member(p%2), "batches", topic.Config{})
		wg.Go(func() {
			for b := range batches {
				batch := make([]note, size)
				for i := range batch {
					batch[i] = note{P: p, I: b*size + i}
				}
				first, err := tp.PublishAll(ctx, batch...)
				if err != nil || (first-1)%size != 0 {
					errs <- fmt.Errorf("batch %d of publisher %d: first %d, %v", b, p, first, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !<-done {
		t.Fatal(st.failed)
	}
	for i, m := range st.msgs {
		if m.Value.I%size != i%size || (i%size > 0 && m.Value.P != st.msgs[i-1].Value.P) {
			t.Fatalf("message %d (%+v) breaks a batch", m.Seq, m.Value)
		}
	}
	if _, err := mustTopic[note](t, c.Member(0), "batches", topic.Config{}).PublishAll(ctx); !errors.Is(err, topic.ErrInvalidConfig) {
		t.Fatalf("an empty batch: %v", err)
	}
}
