package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// registerAppend registers on every member "append", a partition processor that keeps a log in
// its map: key "n" holds the next index, key "i<index>" each appended argument. It returns the
// index it appended at. An argument "fail" appends and then fails, so nothing may be applied.
func registerAppend(t *testing.T, c *cluster) {
	t.Helper()
	for _, s := range c.Svcs {
		err := s.RegisterPartitionProcessor("append", func(ctx context.Context, v *PartitionView, arg []byte) ([]byte, error) {
			var n uint64
			if b, ok := v.Get([]byte("n")); ok {
				n = binary.BigEndian.Uint64(b)
			}
			v.Set(fmt.Appendf(nil, "i%d", n), append([]byte(nil), arg...))
			if got, ok := v.Get(fmt.Appendf(nil, "i%d", n)); !ok || string(got) != string(arg) {
				return nil, fmt.Errorf("the view does not read its own write: %q %v", got, ok)
			}
			v.Set([]byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
			if string(arg) == "fail" {
				return nil, errors.New("refused")
			}
			return binary.BigEndian.AppendUint64(nil, n), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestPartitionProcessorIsAtomicAndReplicated(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	registerAppend(t, c)
	ctx := context.Background()
	const p = partition.ID(7)
	const writers, each = 6, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		m, err := c.Svc(w%3).OpenMap("log", nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range each {
				if _, err := m.ExecutePartition(ctx, "append", p, fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// A failing processor applies nothing, and says why.
	m, _ := c.Svc(0).OpenMap("log", nil)
	if _, err := m.ExecutePartition(ctx, "append", p, []byte("fail")); !errors.Is(err, ErrProcessor) {
		t.Fatalf("failing processor: %v, want ErrProcessor", err)
	}
	if _, err := m.ExecutePartition(ctx, "nope", p, nil); !errors.Is(err, ErrNoProcessor) {
		t.Fatalf("unknown processor: %v, want ErrNoProcessor", err)
	}

	// Every replica holds the same log: writers*each distinct entries at indexes 0..n-1.
	tab := c.Coord.Table
	for _, r := range tab.Partitions[p].Replicas {
		pt := c.Svcs[r].parts[p]
		pt.mu.RLock()
		n := binary.BigEndian.Uint64(pt.rs.get("log", "n", 0).value)
		seen := map[string]bool{}
		for i := range n {
			rec := pt.rs.get("log", fmt.Sprintf("i%d", i), 0)
			if !rec.ok || seen[string(rec.value)] {
				t.Errorf("replica %s: entry %d missing or repeated (%q)", r, i, rec.value)
			}
			seen[string(rec.value)] = true
		}
		pt.mu.RUnlock()
		if n != writers*each {
			t.Fatalf("replica %s holds %d entries, want %d", r, n, writers*each)
		}
	}

	// The owner dies: the new owner continues the log where it was.
	owner := tab.Partitions[p].Replicas[0]
	c.Kill(owner)
	c.WaitStable()
	res, err := c.Svc(0).mustOpen(t, "log").ExecutePartition(ctx, "append", p, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint64(res); got != writers*each {
		t.Fatalf("append after failover at %d, want %d", got, writers*each)
	}
}

// mustOpen opens an untyped map handle.
func (s *Service) mustOpen(t *testing.T, name string) *Map {
	t.Helper()
	m, err := s.OpenMap(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRegisterPartitionProcessorRefusesDuplicates(t *testing.T) {
	c := newCluster(t, 1, 0, nil)
	s := c.Svc(0)
	fn := func(context.Context, *PartitionView, []byte) ([]byte, error) { return nil, nil }
	if err := s.RegisterPartitionProcessor("p", fn); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterPartitionProcessor("p", fn); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("second registration: %v", err)
	}
	if err := s.RegisterPartitionProcessor("", fn); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty name: %v", err)
	}
}

// ExecuteAll is atomic too: a processor that fails on one entry leaves every entry as it was.
func TestExecuteAllFailureAppliesNothing(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	m := mustMap[string, int](t, c.Svc(0), "counts")
	const p = partition.ID(3)
	var keys []string
	for i := 0; len(keys) < 5; i++ {
		k := fmt.Sprint("k", i)
		if kp, _ := m.Partition(k); kp == p {
			keys = append(keys, k)
			if err := m.Put(ctx, k, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	// "bump" sets every entry to 2 but fails on the last key it meets: whichever order the
	// partition yields them in, some were set before the failure.
	seen := 0
	for _, s := range c.Svcs {
		err := s.RegisterProcessor("bump", func(ctx context.Context, e *RawEntry, arg []byte) ([]byte, error) {
			if seen++; seen == len(keys) {
				return nil, errors.New("refused")
			}
			v, _ := testCodec[int]{}.Encode(2)
			e.SetValue(v)
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.raw.ExecuteAll(ctx, "bump", p, nil); !errors.Is(err, ErrProcessor) {
		t.Fatalf("ExecuteAll = %v, want ErrProcessor", err)
	}
	for _, k := range keys {
		if v, err := m.Get(ctx, k); err != nil || v != 1 {
			t.Fatalf("%s = %d, %v after a failed ExecuteAll; want 1", k, v, err)
		}
	}
}

func TestStructureMapsAreApartFromUserMaps(t *testing.T) {
	c := newCluster(t, 1, 0, nil)
	ctx := context.Background()
	s := c.Svc(0)
	registerAppend(t, c)
	q, err := s.OpenStructureMap("queue", "jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.ExecutePartition(ctx, "append", 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.mustOpen(t, "jobs").Size(ctx); err != nil || n != 0 {
		t.Fatalf("user map jobs has %d entries (%v): the queue's entries leaked into it", n, err)
	}
	if _, err := s.OpenMap(StructureMapName("queue", "jobs"), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a user opened a structure's map: %v", err)
	}
	if _, err := s.OpenStructureMap("queue", "", nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty structure name: %v", err)
	}
}

func TestStructureMapsConfig(t *testing.T) {
	if !IsStructureMapName(StructureMapName("queue", "jobs")) || IsStructureMapName("jobs") || IsStructureMapName("\x00queue\x00") {
		t.Fatal("IsStructureMapName disagrees with StructureMapName")
	}
	cfg := Config{StructureMaps: map[string]MapConfig{"jobs": {}}}
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a user map name among StructureMaps: %v", err)
	}
	cfg.StructureMaps = map[string]MapConfig{StructureMapName("queue", "jobs"): {}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// appendedAt decodes what "append" returns: the index it appended at.
func appendedAt(t *testing.T, res []byte) uint64 {
	t.Helper()
	if len(res) != 8 {
		t.Fatalf("append answered %d bytes", len(res))
	}
	return binary.BigEndian.Uint64(res)
}

// A partition processor whose answer arrives after the caller gave up (a timeout: it may have
// been applied) is sent again as the same operation (an Attempt): the owner answers with the
// first run's result instead of running it again. A queue's poll relies on it, or an item
// removed for a caller that timed out would reach no one (the Jepsen queue workload found that
// under a lossy network, docs/faults.md).
func TestPartitionProcessorAttemptGetsLateResult(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	registerAppend(t, c)
	owner, client := c.Svc(0), c.Svc(1)
	p := partitionOwnedBy(t, c, owner.self)
	m := client.mustOpen(t, "log")
	release := make(chan struct{})
	c.Net.SetAnswered(func(from, to string, typ transport.MsgType) bool {
		if from == string(client.self) && typ == msgOp {
			<-release // the answer is late: the caller has given up
		}
		return false
	})
	var a Attempt
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := m.ExecutePartitionAttempt(ctx, &a, "append", p, []byte("first"))
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("the late call returned %v, want ErrTimeout", err)
	}
	close(release)
	c.Net.SetAnswered(nil)
	res, err := m.ExecutePartitionAttempt(context.Background(), &a, "append", p, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	if got := appendedAt(t, res); got != 0 {
		t.Fatalf("the attempt again answered index %d, want 0 (the first run's)", got)
	}
	res, err = m.ExecutePartition(context.Background(), "append", p, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	if got := appendedAt(t, res); got != 1 {
		t.Fatalf("the next operation appended at %d, want 1 (the first ran once)", got)
	}
}

// A partition processor that the owner applied but its backup never acknowledged fails with a
// timeout and its result, and so does the same operation sent again (remembered as failed).
func TestPartitionProcessorResultWithUnacknowledgedBackup(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	registerAppend(t, c)
	owner, client := c.Svc(0), c.Svc(1)
	p := partitionOwnedBy(t, c, owner.self)
	m := client.mustOpen(t, "log")
	c.Net.SetHang(func(from, to string, typ transport.MsgType) bool {
		return from == string(owner.self) && typ == msgBackup
	})
	var a Attempt
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	res, err := m.ExecutePartitionAttempt(ctx, &a, "append", p, []byte("first"))
	cancel()
	if !errors.Is(err, ErrTimeout) || len(res) == 0 {
		t.Fatalf("a write its backup never acknowledged returned %q, %v; want its result and ErrTimeout", res, err)
	}
	if got := appendedAt(t, res); got != 0 {
		t.Fatalf("appended at %d, want 0", got)
	}
	c.Net.SetHang(nil)
	res, err = m.ExecutePartitionAttempt(context.Background(), &a, "append", p, []byte("first"))
	if err == nil || len(res) == 0 || appendedAt(t, res) != 0 {
		t.Fatalf("the same operation again: %q, %v; want the first result (index 0) with its unknown outcome", res, err)
	}
}
