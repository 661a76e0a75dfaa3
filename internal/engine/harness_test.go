package engine

import (
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// The harness runs several map services in one process over transport's in-memory network,
// with a coordinator played by the test (internal/enginetest).

// testPartitions is the partition count of the test clusters.
const testPartitions = 31

type cluster struct {
	*enginetest.Cluster[*Service]
	cfg Config
}

func newCluster(t testing.TB, n, backups int, mod func(*Config)) *cluster {
	t.Helper()
	cfg := Config{ExpiryInterval: 20 * time.Millisecond, OperationTimeout: 20 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	// Start reads c.cfg when it starts a member, so a test may change the config of the
	// members it starts later.
	c := &cluster{cfg: cfg}
	c.Cluster = enginetest.NewCluster(t, n, enginetest.Config[*Service]{
		Partitions: testPartitions,
		Plan:       partition.PlanConfig{Backups: backups, RecreateLost: true},
		Start: func(m enginetest.Member) (*Service, error) {
			return NewService(c.cfg, m.Node, m.Caller, m.Server)
		},
		Stop: func(s *Service) { s.Close() },
	})
	return c
}

func mustMap[K comparable, V any](t *testing.T, s *Service, name string) *tmap[K, V] {
	t.Helper()
	m, err := newTMap[K, V](s, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// keysOwnedBy returns n keys whose partitions member owner owns in the current table (same: all
// in one partition).
func keysOwnedBy(t *testing.T, c *cluster, m *tmap[string, string], owner partition.MemberID, n int, same bool) []string {
	t.Helper()
	return c.KeysOwnedBy(func(k string) partition.ID { p, _ := m.Partition(k); return p }, owner, n, same)
}

// recorder collects the events one listener received.
type recorder[K comparable, V any] struct {
	enginetest.Recorder[EntryEvent[K, V]]
}

func (r *recorder[K, V]) on(e EntryEvent[K, V]) { r.Record(e, e.Kind == listener.Overflow, e.Missed) }
