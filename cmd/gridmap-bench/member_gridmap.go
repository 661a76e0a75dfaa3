package main

import (
	"context"
	"path/filepath"
	"strconv"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/queue"
)

// gridmapMember adapts a *gridmap.Member and its benchmark map to member and store.
type gridmapMember struct {
	m  *gridmap.Member
	mp *dmap.Map[string, []byte]
	q  *queue.Queue[[]byte]
}

func startMember(ctx context.Context, spec memberSpec) (member, error) {
	var sec gridmap.Security
	if spec.TLSDir != "" {
		n := strconv.Itoa(spec.Index + 1)
		sec.TLS = gridmap.TLSConfig{
			CertFile: filepath.Join(spec.TLSDir, "member-"+n+".pem"),
			KeyFile:  filepath.Join(spec.TLSDir, "member-"+n+"-key.pem"),
			CAFile:   filepath.Join(spec.TLSDir, "ca.pem"),
		}
	}
	m, err := gridmap.Start(ctx, gridmap.Config{
		Name:           "bench-" + strconv.Itoa(spec.Index),
		GossipBindAddr: spec.GossipBind,
		Seeds:          spec.Seeds,
		ExpectMembers:  spec.Members,
		BackupCount:    new(spec.Backups),
		AsyncBackups:   spec.AsyncBackups,
		Logger:         spec.Logger,
		Security:       sec,
	})
	if err != nil {
		return nil, err
	}
	mp, err := gridmap.GetMap[string, []byte](m, benchMapName)
	if err != nil {
		_ = m.Close(ctx)
		return nil, err
	}
	q, err := queue.New[[]byte](m.Queues(), benchMapName)
	if err != nil {
		_ = m.Close(ctx)
		return nil, err
	}
	return &gridmapMember{m: m, mp: mp, q: q}, nil
}

func (g *gridmapMember) Map() store                      { return g }
func (g *gridmapMember) GossipAddr() string              { return g.m.GossipAddr() }
func (g *gridmapMember) Close(ctx context.Context) error { return g.m.Close(ctx) }

func (g *gridmapMember) Put(ctx context.Context, key string, value []byte) error {
	return g.mp.Put(ctx, key, value)
}

func (g *gridmapMember) Get(ctx context.Context, key string) ([]byte, error) {
	return g.mp.Get(ctx, key)
}

// Offer implements queueStore.
func (g *gridmapMember) Offer(ctx context.Context, value []byte) error { return g.q.Offer(ctx, value) }

// Take implements queueStore.
func (g *gridmapMember) Take(ctx context.Context) ([]byte, error) { return g.q.Take(ctx) }
