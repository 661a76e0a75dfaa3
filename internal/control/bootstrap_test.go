package control

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gridmap/gridmap/discovery"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// openLone opens a member outside a testCluster, with the given gossip bind
// address and discovery; it is closed at the end of the test.
func openLone(t *testing.T, id, gossip string, d discovery.Discovery, withoutSeeds bool) *Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := transport.NewServer(transport.Config{})
	cli, _ := transport.NewClient(transport.Config{DialTimeout: time.Second})
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	n, err := Open(Config{
		ID:                    partition.MemberID(id),
		TransportAddr:         ln.Addr().String(),
		GossipBindAddr:        gossip,
		Discovery:             d,
		BootstrapWithoutSeeds: withoutSeeds,
		PartitionCount:        8,
		Timings:               LocalTimings(),
		Logger:                testLogger(t),
	}, Deps{Server: srv, Client: cli})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); srv.Close(); cli.Close(); <-served })
	return n
}

// TestNoBootstrapWhileSeedsUnreachable: a member whose only seed does not
// answer keeps waiting (no raft configuration, WaitReady does not return)
// for many BootstrapSettle periods; once a member starts at the seed
// address, both end up in one cluster.
func TestNoBootstrapWhileSeedsUnreachable(t *testing.T) {
	seed := freeGossipAddr(t)
	a := openLone(t, "b-a", "127.0.0.1:0", discovery.Static{seed}, false)
	// WaitReady is the wait: it must not succeed within 10 settle periods
	// (with JoinRetryInterval 200ms, about 10 join attempts).
	wait := 10 * LocalTimings().BootstrapSettle
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	err := a.WaitReady(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady = %v, want a deadline error (the member must not found a cluster alone)", err)
	}
	if !a.joinAttempted.Load() {
		t.Fatal("no join attempt in the wait")
	}
	if f := a.raft.GetConfiguration(); f.Error() != nil || len(f.Configuration().Servers) != 0 {
		t.Fatalf("member bootstrapped raft: %v %v", f.Configuration().Servers, f.Error())
	}
	// The seed comes up (founding the cluster: its discovery names nobody);
	// the waiting member joins it.
	b := openLone(t, "b-b", seed, nil, false)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []*Node{a, b} {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatalf("%s: %v", n.LocalID(), err)
		}
	}
	eventually(t, 5*time.Second, func() error {
		for _, n := range []*Node{a, b} {
			if got := len(n.Table().Members()); got != 2 {
				return errors.New(string(n.LocalID()) + ": table does not name both members")
			}
		}
		return nil
	})
}

// TestBootstrapWithoutSeedsFlag: with BootstrapWithoutSeeds, a member whose
// seed does not answer founds a cluster; a member whose discovery names only
// itself founds one without the flag.
func TestBootstrapWithoutSeedsFlag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := openLone(t, "f-a", "127.0.0.1:0", discovery.Static{freeGossipAddr(t)}, true)
	if err := a.WaitReady(ctx); err != nil {
		t.Fatalf("with BootstrapWithoutSeeds: %v", err)
	}
	self := freeGossipAddr(t)
	b := openLone(t, "f-b", self, discovery.Static{self, "localhost:" + self[len("127.0.0.1:"):]}, false)
	if err := b.WaitReady(ctx); err != nil {
		t.Fatalf("discovery naming only itself: %v", err)
	}
}
