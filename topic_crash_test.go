package gridmap

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/topic"
)

// The topic commands of a member process (crash_test.go), on reliable topics of strings:
//
//	tsub NAME        -> ok | err MSG     subscribe; the process keeps what it receives
//	tpub NAME VALUE  -> ok SEQ | err MSG
//	tread NAME       -> got N MISSED SEQ=VALUE ... (everything received so far, in order)
var childTopics struct {
	mu   sync.Mutex
	got  map[string][]string // per topic: "seq=value" in delivery order
	miss map[string]uint64
}

func topicCommand(ctx context.Context, m *Member, f []string, out *bufio.Writer) bool {
	if len(f) < 2 || (f[0] != "tsub" && f[0] != "tpub" && f[0] != "tread") {
		return false
	}
	tp, err := topic.New(m.Topics(), f[1], topic.WithConfig[string](topic.Config{Reliable: true}))
	if err != nil {
		fmt.Fprintln(out, "err", err)
		return true
	}
	ct := &childTopics
	switch {
	case f[0] == "tsub" && len(f) == 2:
		sub, err := tp.Subscribe(ctx)
		if err != nil {
			fmt.Fprintln(out, "err", err)
			return true
		}
		ct.mu.Lock()
		if ct.got == nil {
			ct.got, ct.miss = make(map[string][]string), make(map[string]uint64)
		}
		ct.mu.Unlock()
		go func() { // runs until the process ends (SIGKILL, or stdin closed)
			for msg := range sub.Messages() {
				ct.mu.Lock()
				if msg.Missed > 0 {
					ct.miss[f[1]] += msg.Missed
				} else {
					ct.got[f[1]] = append(ct.got[f[1]], fmt.Sprint(msg.Seq, "=", msg.Value))
				}
				ct.mu.Unlock()
			}
		}()
		fmt.Fprintln(out, "ok")
	case f[0] == "tpub" && len(f) == 3:
		seq, err := tp.Publish(ctx, f[2])
		if err != nil {
			fmt.Fprintln(out, "err", err)
			return true
		}
		fmt.Fprintln(out, "ok", seq)
	case f[0] == "tread" && len(f) == 2:
		ct.mu.Lock()
		got := ct.got[f[1]]
		fmt.Fprintln(out, "got", len(got), ct.miss[f[1]], strings.Join(got, " "))
		ct.mu.Unlock()
	default:
		fmt.Fprintln(out, "err bad topic command")
	}
	return true
}

// The owner of a reliable topic's partition is SIGKILLed while the others publish: every
// acknowledged publish reaches the subscribers of the surviving processes, once, in sequence
// order, with no notice of a loss.
func TestTopicOwnerProcessKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	children := startChildren(t, 3)
	waitChildren(t, children, func(s childState) bool { return s.epoch > 0 && s.pending == 0 && s.minReplicas == 2 && s.mem == 3 })
	const name = "alerts"
	var owner *child
	var alive []*child
	for _, c := range children {
		if got := c.do("tsub " + name); got != "ok" {
			t.Fatalf("subscribe: %s", got)
		}
		if c.do("owns "+name) == "true" {
			owner = c
		} else {
			alive = append(alive, c)
		}
	}
	if owner == nil {
		t.Fatal("no process owns the topic's partition")
	}
	acked := map[uint64]string{}
	publish := func(c *child, v string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := c.do("tpub " + name + " " + v)
			if seq, ok := strings.CutPrefix(got, "ok "); ok {
				n, err := strconv.ParseUint(seq, 10, 64)
				if err != nil {
					t.Fatalf("tpub answered %q", got)
				}
				if prev, dup := acked[n]; dup {
					t.Fatalf("sequence %d acknowledged for %s and %s", n, prev, v)
				}
				acked[n] = v
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %s", v, got)
			}
		}
	}
	for i := range 300 {
		publish(children[i%3], fmt.Sprint("before", i))
	}
	owner.kill()
	for i := range 300 {
		publish(alive[i%2], fmt.Sprint("after", i))
	}
	var last uint64
	for seq := range acked {
		last = max(last, seq)
	}
	for _, c := range alive {
		deadline := time.Now().Add(60 * time.Second)
		for {
			f := strings.Fields(c.do("tread " + name))
			if len(f) < 3 || f[0] != "got" {
				t.Fatalf("tread: %v", f)
			}
			if f[2] != "0" {
				t.Fatalf("process %s was told it missed %s messages", c.id, f[2])
			}
			msgs := f[3:]
			if len(msgs) > 0 && strings.HasPrefix(msgs[len(msgs)-1], fmt.Sprint(last, "=")) || time.Now().After(deadline) {
				checkTopicDelivery(t, c.id, msgs, acked, last)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// checkTopicDelivery checks that msgs ("seq=value", in delivery order) are 1..last, each once,
// and that each acknowledged sequence number carries its value.
func checkTopicDelivery(t *testing.T, id string, msgs []string, acked map[uint64]string, last uint64) {
	t.Helper()
	if uint64(len(msgs)) != last {
		t.Fatalf("process %s received %d messages, want %d", id, len(msgs), last)
	}
	for i, m := range msgs {
		seq, v, _ := strings.Cut(m, "=")
		if seq != strconv.Itoa(i+1) {
			t.Fatalf("process %s: message %d is %q", id, i+1, m)
		}
		if want, ok := acked[uint64(i+1)]; ok && v != want {
			t.Fatalf("process %s: sequence %d carries %q, acknowledged as %q", id, i+1, v, want)
		}
	}
}
