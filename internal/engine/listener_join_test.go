package engine

import (
	"context"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
)

// A member that joins after a cluster-wide listener was registered, and takes partitions over
// before the registrant's own push reaches it, still forwards their events: the registrations
// travel with the partition copies, ahead of the hand-off.
func TestClusterListenerReachesJoinerThroughCopies(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	reg := c.Svc(0)
	m0 := mustMap[int, int](t, reg, "numbers")
	var rec recorder[int, int]
	if _, err := m0.AddEntryListener(ctx, rec.on, ListenerOptions[int]{}); err != nil {
		t.Fatal(err)
	}
	joiner := c.Start()
	// The registrant's pushes to the joiner are lost (as if it were still catching up).
	c.Net.SetDrop(func(from, to string, mt transport.MsgType) bool {
		return from == string(reg.self) && to == string(joiner.self) && mt == msgListenerRegs
	})
	c.Replan(nil)
	tab := c.WaitStable()
	const want = 50
	n := 0
	for i := 0; n < want; i++ {
		if p, _ := m0.Partition(i); tab.Owner(p) != joiner.self {
			continue
		}
		if err := m0.Put(ctx, i, i); err != nil {
			t.Fatal(err)
		}
		n++
	}
	enginetest.Eventually(t, 20*time.Second, "the events of the joiner's partitions", func() bool { return rec.Count() == want })
}
