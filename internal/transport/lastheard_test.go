package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A late answer to a call that timed out still tells the caller the peer is alive (LastHeard):
// the map engine's owners tell a slow backup from a dead one by it (issue 21).
func TestLastHeardCountsLateAnswers(t *testing.T) {
	s := startServer(t, Config{})
	release := make(chan struct{})
	s.Handle(msgSink, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		<-release // an answer held back past the caller's timeout
		return Message{}, nil
	}))
	c := newClient(t, Config{})
	if _, ok := c.LastHeard(s.addr); ok {
		t.Fatal("LastHeard before any call")
	}
	if _, err := c.CallTimeout(context.Background(), s.addr, Message{Type: msgEcho}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	first, ok := c.LastHeard(s.addr)
	if !ok {
		t.Fatal("no LastHeard after an answer")
	}
	sent := time.Now()
	_, err := c.CallTimeout(context.Background(), s.addr, Message{Type: msgSink}, 50*time.Millisecond)
	if !errors.Is(err, ErrCallTimeout) {
		t.Fatalf("got %v, want ErrCallTimeout", err)
	}
	if h, _ := c.LastHeard(s.addr); h.After(sent) {
		t.Fatalf("heard at %v, after the call went out (%v), with no answer yet", h, sent)
	}
	close(release)
	waitFor(t, "the late answer to count as heard", func() bool {
		h, _ := c.LastHeard(s.addr)
		return h.After(sent) && h.After(first)
	})
}
