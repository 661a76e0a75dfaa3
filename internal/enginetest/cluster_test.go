package enginetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// stub is a service that answers pings on its member's server.
type stub struct {
	m      Member
	closed bool
}

const msgPing transport.MsgType = 200

// The harness starts members with their servers on the network and the coordinator's first
// plan, and Kill takes a member off the network, stops its service and replans without it.
func TestClusterStartKill(t *testing.T) {
	c := NewCluster(t, 3, Config[*stub]{
		Partitions: 7,
		Plan:       partition.PlanConfig{Backups: 1},
		Start: func(m Member) (*stub, error) {
			m.Server.Handle(msgPing, transport.HandlerFunc(func(ctx context.Context, req transport.Message) (transport.Message, error) {
				return transport.Message{Body: []byte(m.ID)}, nil
			}))
			return &stub{m: m}, nil
		},
		Stop: func(s *stub) { s.closed = true },
	})
	tab := c.WaitStable()
	if !slices.Equal(c.Active, []partition.MemberID{"m00", "m01", "m02"}) || tab.Count() != 7 {
		t.Fatalf("active %v, %d partitions", c.Active, tab.Count())
	}
	for p := range tab.Count() {
		if tab.Owner(partition.ID(p)) == "" || len(tab.Backups(partition.ID(p))) != 1 {
			t.Fatalf("partition %d not planned: %+v", p, tab.Partitions[p])
		}
	}
	ping := func(from, to partition.MemberID) error {
		resp, err := c.Svcs[from].m.Caller.Call(t.Context(), string(to), transport.Message{Type: msgPing})
		if err == nil && string(resp.Body) != string(to) {
			t.Fatalf("ping %s answered by %q", to, resp.Body)
		}
		return err
	}
	if err := ping("m00", "m01"); err != nil {
		t.Fatal(err)
	}
	victim := c.Svcs["m01"]
	c.Kill("m01")
	if !victim.closed || slices.Contains(c.Active, "m01") {
		t.Fatalf("killed member: closed %v, active %v", victim.closed, c.Active)
	}
	if err := ping("m00", "m01"); !errors.Is(err, transport.ErrConnClosed) {
		t.Fatalf("ping of a killed member: %v", err)
	}
	tab, _ = c.Coord.Watch()
	for p := range tab.Count() {
		if tab.Owner(partition.ID(p)) == "m01" {
			t.Fatalf("partition %d still owned by the killed member", p)
		}
	}
}

func TestRecorder(t *testing.T) {
	var r Recorder[string]
	r.Record("a", false, 0)
	r.Record("", true, 3)
	r.Record("b", false, 0)
	evs, missed := r.Snapshot()
	if !slices.Equal(evs, []string{"a", "b"}) || missed != 3 || r.Count() != 2 {
		t.Fatalf("%q, %d missed, count %d", evs, missed, r.Count())
	}
}
