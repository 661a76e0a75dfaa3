package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/discovery"
	"github.com/gridmap/gridmap/internal/freeport"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// freeGossipAddr returns a loopback host:port free for TCP and UDP right now.
func freeGossipAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestStartStaticSeedsIncludingSelf starts members with fixed gossip ports
// and the same static seed list (their own address included), all at once,
// through the blocking Start: members that are joined by the others before
// their own first join attempt must still bootstrap.
func TestStartStaticSeedsIncludingSelf(t *testing.T) {
	rounds := 5
	if testing.Short() {
		rounds = 1
	}
	for round := range rounds {
		addrs := []string{freeGossipAddr(t), freeGossipAddr(t), freeGossipAddr(t)}
		nodes := make([]*Node, 3)
		errs := make([]error, 3)
		var cleanups []func()
		var mu sync.Mutex
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					errs[i] = err
					return
				}
				srv, _ := transport.NewServer(transport.Config{})
				cli, _ := transport.NewClient(transport.Config{})
				served := make(chan struct{})
				go func() { defer close(served); srv.Serve(ln) }()
				mu.Lock()
				cleanups = append(cleanups, func() { srv.Close(); cli.Close(); <-served })
				mu.Unlock()
				nodes[i], errs[i] = Start(ctx, Config{
					ID:             partition.MemberID(fmt.Sprintf("r%d-m%d", round, i)),
					TransportAddr:  ln.Addr().String(),
					GossipBindAddr: addrs[i],
					Discovery:      discovery.Static(addrs),
					ExpectMembers:  3,
					PartitionCount: 16,
					Plan:           partition.PlanConfig{Backups: 1},
					Timings:        LocalTimings(),
					Logger:         testLogger(t),
				}, Deps{Server: srv, Client: cli})
			})
		}
		wg.Wait()
		cancel()
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
		for _, c := range cleanups {
			c()
		}
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
