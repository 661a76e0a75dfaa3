package topic_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/gridmaptest"
	"github.com/gridmap/gridmap/topic"
)

func TestErrors(t *testing.T) {
	c := gridmaptest.NewCluster(t, 1, gridmaptest.WithConfig(func(_ int, cfg *gridmap.Config) { cfg.MaxFrameSize = 1 << 20 }))
	ctx := testContext(t)
	m := c.Member(0)
	if _, err := topic.New[string](nil, "x"); !errors.Is(err, topic.ErrInvalidConfig) {
		t.Errorf("nil service: %v", err)
	}
	if _, err := topic.New[string](m.Topics(), ""); !errors.Is(err, topic.ErrInvalidConfig) {
		t.Errorf("empty name: %v", err)
	}
	if _, err := topic.New(m.Topics(), "x", topic.WithCodec[string](nil)); !errors.Is(err, topic.ErrInvalidConfig) {
		t.Errorf("nil codec: %v", err)
	}
	if _, err := topic.New(m.Topics(), "x", topic.WithConfig[string](topic.Config{RingCapacity: 5})); !errors.Is(err, topic.ErrInvalidConfig) {
		t.Errorf("a ring on a plain topic: %v", err)
	}
	tp := mustTopic[string](t, m, "x", topic.Config{})
	if _, err := tp.Subscribe(ctx, topic.WithBuffer(-1)); !errors.Is(err, topic.ErrInvalidConfig) {
		t.Errorf("negative buffer: %v", err)
	}
	if _, err := tp.Publish(ctx, strings.Repeat("x", 2<<20)); !errors.Is(err, topic.ErrValueTooLarge) {
		t.Errorf("a message beyond the maximum value size: %v", err)
	}

	// A payload the topic's codec cannot read is delivered with Err set, in its place.
	ints := mustTopic[int](t, m, "numbers", topic.Config{})
	s := mustSubscribe(t, ctx, ints)
	if _, err := m.Topics().PublishBytes(ctx, "numbers", []byte{0xc1}); err != nil { // 0xc1: never used by msgpack
		t.Fatal(err)
	}
	if _, err := ints.Publish(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if msg := <-s.Messages(); msg.Seq != 1 || !errors.Is(msg.Err, topic.ErrCodec) {
		t.Errorf("undecodable message: %+v", msg)
	}
	if msg := <-s.Messages(); msg.Seq != 2 || msg.Err != nil || msg.Value != 7 {
		t.Errorf("the next message: %+v", msg)
	}
}

// Close ends a subscription: its channel closes, Err stays nil, and Next says where to resume.
// The member stopping ends one with ErrClosed.
func TestSubscriptionEnds(t *testing.T) {
	c := gridmaptest.NewCluster(t, 1)
	ctx := testContext(t)
	tp := mustTopic[string](t, c.Member(0), "x", topic.Config{ResyncInterval: 20e6})
	s := mustSubscribe(t, ctx, tp)
	s.Close()
	if _, open := <-s.Messages(); open {
		t.Fatal("Messages still open after Close")
	}
	if s.Err() != nil || s.Next() != 1 {
		t.Fatalf("after Close: Err %v, Next %d", s.Err(), s.Next())
	}
	s2 := mustSubscribe(t, ctx, tp)
	c.Kill(0)
	select {
	case _, open := <-s2.Messages():
		if open {
			t.Fatal("a message from a stopped member")
		}
	case <-ctx.Done():
		t.Fatal("the subscription outlived its member")
	}
	if !errors.Is(s2.Err(), topic.ErrClosed) {
		t.Fatalf("Err after the member stopped: %v", s2.Err())
	}
}
