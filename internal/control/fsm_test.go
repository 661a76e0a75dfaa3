package control

import (
	"bytes"
	"io"
	"runtime"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/gridmap/gridmap/partition"
)

func applyCmd(t *testing.T, f *fsm, idx uint64, c command) any {
	t.Helper()
	b, err := encodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: b})
}

func TestFSMApplyWatchSnapshotRestore(t *testing.T) {
	f := newFSM(4)
	t0, ch0 := f.watchTable()
	if t0.Epoch != 0 || t0.Count() != 4 {
		t.Fatalf("initial table %+v", t0)
	}
	if r := applyCmd(t, f, 1, command{Op: opPutMember, ID: "a", Entry: dirEntry{TransportAddr: "ta", GossipAddr: "ga"}}); r != nil {
		t.Fatal(r)
	}
	next := partition.NewTable(4)
	next.Epoch = 1
	for p := range next.Partitions {
		next.Partitions[p].Replicas = []partition.MemberID{"a"}
	}
	// A stale compare-and-set is refused and does not wake watchers.
	if r := applyCmd(t, f, 2, command{Op: opSetTable, Prev: 7, Table: next}); r != errEpochMoved {
		t.Fatalf("stale set: %v", r)
	}
	select {
	case <-ch0:
		t.Fatal("watch fired on a refused table")
	default:
	}
	if r := applyCmd(t, f, 3, command{Op: opSetTable, Prev: 0, Table: next}); r != nil {
		t.Fatal(r)
	}
	select {
	case <-ch0:
	default:
		t.Fatal("watch did not fire on a new table")
	}

	g := newFSM(4)
	_, chg := g.watchTable()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshot(t, f)))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-chg:
	default:
		t.Fatal("restore did not wake watchers")
	}
	if tb := g.table(); !tb.Equal(next) {
		t.Fatalf("restored table %+v", tb)
	}
	if e, ok := g.member("a"); !ok || e.TransportAddr != "ta" || e.GossipAddr != "ga" {
		t.Fatalf("restored directory entry %+v %v", e, ok)
	}
	if r := applyCmd(t, g, 4, command{Op: opDeleteMember, ID: "a"}); r != nil {
		t.Fatal(r)
	}
	if _, ok := g.member("a"); ok {
		t.Fatal("delete did not delete")
	}
	if r := g.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: []byte{0xc1}}); r == nil {
		t.Fatal("garbage command applied")
	}
}

// snapshot returns what f's snapshot persists.
func snapshot(t *testing.T, f *fsm) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Persist(&sink{Buffer: &buf}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type sink struct{ *bytes.Buffer }

func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { return nil }
func (s *sink) Close() error  { return nil }

// TestFSMRefusesCorruptState: a snapshot or table command that is truncated, declares more
// bytes than it holds, has another partition count or breaks the table's invariants is refused
// and leaves the state as it was; a good snapshot still restores afterwards.
func TestFSMRefusesCorruptState(t *testing.T) {
	good := newFSM(4)
	tb := partition.NewTable(4)
	tb.Epoch = 1
	for p := range tb.Partitions {
		tb.Partitions[p].Replicas = []partition.MemberID{"a", "b"}
	}
	if r := applyCmd(t, good, 1, command{Op: opSetTable, Prev: 0, Table: tb}); r != nil {
		t.Fatal(r)
	}
	valid := snapshot(t, good)

	other := newFSM(8) // another partition count
	big := partition.NewTable(8)
	big.Epoch = 1
	if r := applyCmd(t, other, 1, command{Op: opSetTable, Prev: 0, Table: big}); r != nil {
		t.Fatal(r)
	}
	twice := newFSM(4)
	twice.st.Table = tb.Clone()
	twice.st.Table.Partitions[2].Replicas = []partition.MemberID{"a", "a"}

	cases := map[string][]byte{
		"empty":             nil,
		"truncated":         valid[:len(valid)/2],
		"garbage":           []byte{0xc1, 0xc1, 0xc1},
		"oversized map":     {0x81, 0xa1, 'm', 0xdf, 0x7f, 0xff, 0xff, 0xff}, // "m": 2^31 members
		"partition count":   snapshot(t, other),
		"invalid table":     snapshot(t, twice),
		"over the size cap": append(slices.Clone(valid), make([]byte, maxSnapshotSize)...),
	}
	for name, b := range cases {
		f := newFSM(4)
		before := f.table()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		allocated := ms.TotalAlloc
		if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err == nil {
			t.Errorf("%s: restored", name)
		}
		runtime.ReadMemStats(&ms)
		if name != "over the size cap" && ms.TotalAlloc-allocated > 1<<20 {
			t.Errorf("%s: refusing it allocated %d bytes", name, ms.TotalAlloc-allocated)
		}
		if f.table() != before {
			t.Errorf("%s: table replaced", name)
		}
	}

	// The same checks apply to a table committed through the log.
	f := newFSM(4)
	if r := applyCmd(t, f, 1, command{Op: opSetTable, Prev: 0, Table: big}); r == nil || r == errEpochMoved {
		t.Fatalf("table of 8 partitions on a 4-partition cluster: %v", r)
	}
	if r := applyCmd(t, f, 2, command{Op: opSetTable, Prev: 0, Table: twice.st.Table}); r == nil || r == errEpochMoved {
		t.Fatalf("invalid table: %v", r)
	}
	if r := applyCmd(t, f, 3, command{Op: opSetTable, Prev: 0}); r == nil || r == errEpochMoved {
		t.Fatalf("command without a table: %v", r)
	}
	if f.table().Epoch != 0 {
		t.Fatal("a refused table was installed")
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(valid))); err != nil {
		t.Fatal(err)
	}
	if !f.table().Equal(tb) {
		t.Fatalf("restored %+v", f.table())
	}
}
