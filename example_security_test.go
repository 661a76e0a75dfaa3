package gridmap_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/internal/certgen"
)

// A secured member: mutual TLS between members (certificates made by cmd/gridmap-certs; here
// by the package behind it), encrypted gossip, and a cluster name with a join secret. Every
// member of the cluster uses the same settings, each with its own certificate.
func ExampleSecurity() {
	dir, err := os.MkdirTemp("", "gridmap-certs-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	// gridmap-certs -dir $dir -members 1 -hosts 127.0.0.1
	if _, err := certgen.WriteDir(dir, 1, []string{"127.0.0.1"}, time.Hour); err != nil {
		fmt.Println(err)
		return
	}
	gossipKey := make([]byte, 32) // AES-256; keep it in your secret store
	if _, err := rand.Read(gossipKey); err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := gridmap.Start(ctx, gridmap.Config{
		Timings: gridmap.LocalTimings(),
		Security: gridmap.Security{
			TLS: gridmap.TLSConfig{
				CertFile: filepath.Join(dir, "member-1.pem"),
				KeyFile:  filepath.Join(dir, "member-1-key.pem"),
				CAFile:   filepath.Join(dir, "ca.pem"),
			},
			GossipKeys:  [][]byte{gossipKey},
			ClusterName: "crash-reports",
			JoinSecret:  "at least sixteen bytes of secret",
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close(ctx)
	reports, err := gridmap.GetMap[string, string](m, "reports")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := reports.Put(ctx, "bp-1", "secured"); err != nil {
		fmt.Println(err)
		return
	}
	v, err := reports.Get(ctx, "bp-1")
	fmt.Println(v, err)
	// Output: secured <nil>
}

// Rotating the gossip key of a running cluster: install the new key everywhere, switch every
// member to it, then remove the old one. Each call reaches every member alive.
func ExampleCluster_UseGossipKey() {
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(oldKey)
	_, _ = rand.Read(newKey)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := gridmap.Start(ctx, gridmap.Config{
		Timings:  gridmap.LocalTimings(),
		Security: gridmap.Security{GossipKeys: [][]byte{oldKey}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close(ctx)
	cluster := m.Cluster()
	for _, step := range []func(context.Context, []byte) error{cluster.InstallGossipKey, cluster.UseGossipKey} {
		if err := step(ctx, newKey); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := cluster.RemoveGossipKey(ctx, oldKey); err != nil {
		fmt.Println(err)
		return
	}
	keys, err := cluster.GossipKeys(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	ids := keys[m.ID()]
	fmt.Println(len(ids), ids[0] == gridmap.GossipKeyID(newKey))
	// Output: 1 true
}
