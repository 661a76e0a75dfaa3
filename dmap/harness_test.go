package dmap

import (
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// The façade's tests run several members' engines in one process over transport's in-memory
// network, with a coordinator played by the test (internal/enginetest), each seen through its
// user-facing Service.

// testPartitions is the partition count of the test clusters.
const testPartitions = 31

type cluster struct {
	*enginetest.Cluster[*Service]
}

func newCluster(t testing.TB, n, backups int, mod func(*engine.Config)) *cluster {
	t.Helper()
	cfg := engine.Config{ExpiryInterval: 20 * time.Millisecond, OperationTimeout: 20 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return &cluster{enginetest.NewCluster(t, n, enginetest.Config[*Service]{
		Partitions: testPartitions,
		Plan:       partition.PlanConfig{Backups: backups, RecreateLost: true},
		Start: func(m enginetest.Member) (*Service, error) {
			e, err := engine.NewService(cfg, m.Node, m.Caller, m.Server)
			return WrapEngine(e), err
		},
		Stop: func(s *Service) { s.e.Close() },
	})}
}

// id returns the member whose service s is.
func (c *cluster) id(s *Service) partition.MemberID {
	for id, o := range c.Svcs {
		if o == s {
			return id
		}
	}
	c.T.Fatal("unknown service")
	return ""
}

func mustMap[K comparable, V any](t *testing.T, s *Service, name string) *Map[K, V] {
	t.Helper()
	m, err := New[K, V](s, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// keysOwnedBy returns n keys whose partitions member owner owns in the current table (same: all
// in one partition).
func keysOwnedBy(t *testing.T, c *cluster, m *Map[string, string], owner partition.MemberID, n int, same bool) []string {
	t.Helper()
	return c.KeysOwnedBy(func(k string) partition.ID { p, _ := m.Partition(k); return p }, owner, n, same)
}

// recorder collects the events one listener received.
type recorder[K comparable, V any] struct {
	enginetest.Recorder[EntryEvent[K, V]]
}

func (r *recorder[K, V]) on(e EntryEvent[K, V]) { r.Record(e, e.Kind == listener.Overflow, e.Missed) }

// registerDivisible registers on each service "divisible", a predicate that accepts the events
// whose new value is divisible by its argument.
func registerDivisible(t *testing.T, svcs ...*Service) {
	t.Helper()
	for _, s := range svcs {
		err := RegisterPredicate(s, "divisible", func(e EntryEvent[int, int], by int) bool { return e.NewValue%by == 0 })
		if err != nil {
			t.Fatal(err)
		}
	}
}

// coKey is a key whose partition is its Report's: the entries of one report are co-keyed.
type coKey struct {
	Report string
	Kind   string
}

func (k coKey) PartitionKey() string { return k.Report }

// closeSvc closes the engine behind s, as its member's Close does.
func (c *cluster) closeSvc(s *Service) { s.e.Close() }
