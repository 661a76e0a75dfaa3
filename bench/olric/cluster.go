package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/buraksezer/olric"
	"github.com/buraksezer/olric/config"
)

// clusterSpec is the cluster a run measures.
type clusterSpec struct {
	members   int
	backups   int   // synchronous backups per partition (Olric's ReplicaCount is backups+1)
	tableSize int64 // kvstore table size in bytes
	basePort  int   // 0: free ports picked on loopback
}

// cluster is a running Olric cluster inside this process.
type cluster struct {
	dbs   []*olric.Olric
	addrs []string // each member's Olric (client) address
}

// startCluster starts spec.members members on loopback, one after another (each joins the ones
// started before it), and returns once every member sees all of them and the routing table gives
// every partition a primary and spec.backups replicas, with primaries on every member: only then
// do the workers measure the steady state, not a rebalancing.
func startCluster(ctx context.Context, spec clusterSpec) (*cluster, error) {
	olricPorts, gossipPorts, err := ports(spec)
	if err != nil {
		return nil, err
	}
	c := &cluster{}
	for i := range spec.members {
		db, err := startMember(ctx, spec, i, olricPorts[i], gossipPorts)
		if err != nil {
			c.shutdown()
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		c.dbs = append(c.dbs, db)
		c.addrs = append(c.addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(olricPorts[i])))
	}
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for !c.ready(ctx, spec) {
		select {
		case <-ctx.Done():
			c.shutdown()
			return nil, fmt.Errorf("cluster not ready: %w", ctx.Err())
		case <-poll.C:
		}
	}
	return c, nil
}

// ports returns the Olric and memberlist ports of every member: base..base+n-1 and
// base+100..base+100+n-1 when spec.basePort is set, otherwise ports the kernel reports free.
func ports(spec clusterSpec) (olricPorts, gossipPorts []int, err error) {
	if spec.basePort != 0 {
		for i := range spec.members {
			olricPorts = append(olricPorts, spec.basePort+i)
			gossipPorts = append(gossipPorts, spec.basePort+100+i)
		}
		return olricPorts, gossipPorts, nil
	}
	// Hold every listener until all ports are known, so that no port is handed out twice.
	// Memberlist binds TCP and UDP on its port; the kernel rarely gives a port free for TCP
	// while UDP holds it, and a clash fails the start loudly.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range 2 * spec.members {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("pick a free port: %w", err)
		}
		lns = append(lns, ln)
	}
	for i, ln := range lns {
		p := ln.Addr().(*net.TCPAddr).Port
		if i < spec.members {
			olricPorts = append(olricPorts, p)
		} else {
			gossipPorts = append(gossipPorts, p)
		}
	}
	return olricPorts, gossipPorts, nil
}

// startMember starts member i and waits for Olric's Started callback.
func startMember(ctx context.Context, spec clusterSpec, i, port int, gossipPorts []int) (*olric.Olric, error) {
	c := config.New("lan")
	c.BindAddr = "127.0.0.1"
	c.BindPort = port
	c.MemberlistConfig.BindAddr = "127.0.0.1"
	c.MemberlistConfig.BindPort = gossipPorts[i]
	c.MemberlistConfig.AdvertiseAddr = "127.0.0.1"
	c.MemberlistConfig.AdvertisePort = gossipPorts[i]
	// Olric refuses a member's own address among its peers.
	c.Peers = nil
	for j, p := range gossipPorts {
		if j != i {
			c.Peers = append(c.Peers, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		}
	}
	// ReplicaCount counts the primary. Sync replication makes a Put wait for every replica, as a
	// gridmap write waits for its synchronous backups; quorums of 1 ask no more than that.
	c.ReplicaCount = spec.backups + 1
	c.ReplicationMode = config.SyncReplicationMode
	c.WriteQuorum = 1
	c.ReadQuorum = 1
	// Members start in order, so the first ones find few peers: retry joins quickly.
	c.JoinRetryInterval = 100 * time.Millisecond
	c.MaxJoinAttempts = 10
	c.LogOutput = io.Discard
	c.LogLevel = config.LogLevelError
	c.LogVerbosity = 1
	c.DMaps.Engine = config.NewEngine()
	c.DMaps.Engine.Config["tableSize"] = uint64(spec.tableSize)
	started := make(chan struct{})
	c.Started = func() { close(started) }

	db, err := olric.New(c)
	if err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- db.Start() }()
	select {
	case <-started:
		return db, nil
	case err := <-errc:
		return nil, fmt.Errorf("start: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = db.Shutdown(sctx)
		return nil, fmt.Errorf("start: %w", ctx.Err())
	}
}

// ready reports whether every member sees all members and a routing table with every partition
// backed up and primaries spread over every member.
func (c *cluster) ready(ctx context.Context, spec clusterSpec) bool {
	for _, db := range c.dbs {
		client := db.NewEmbeddedClient()
		members, err := client.Members(ctx)
		if err != nil || len(members) != spec.members {
			return false
		}
		table, err := client.RoutingTable(ctx)
		if err != nil || len(table) == 0 {
			return false
		}
		primaries := map[string]bool{}
		for _, route := range table {
			if len(route.PrimaryOwners) == 0 || len(route.ReplicaOwners) < spec.backups {
				return false
			}
			// The last primary owner is the current one; earlier ones still hold old data.
			primaries[route.PrimaryOwners[len(route.PrimaryOwners)-1]] = true
		}
		if len(primaries) != spec.members {
			return false
		}
	}
	return true
}

// shutdown stops every member, each within 5 seconds.
func (c *cluster) shutdown() error {
	var errs []error
	for _, db := range c.dbs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, db.Shutdown(ctx))
		cancel()
	}
	return errors.Join(errs...)
}
