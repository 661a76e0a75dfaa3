package control

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/msgpackcheck"
	"github.com/gridmap/gridmap/partition"
)

// dirEntry is one member in the replicated member directory.
type dirEntry struct {
	TransportAddr string `msgpack:"t"`
	GossipAddr    string `msgpack:"g"`
	// Leaving: the member asked to leave; the planner moves everything off it.
	Leaving bool `msgpack:"l,omitempty"`
	// Removed: the member left gracefully and was removed from raft; it is
	// never added again (a tombstone until memberlist forgets it).
	Removed bool `msgpack:"x,omitempty"`
}

// state is the replicated state machine's content.
type state struct {
	Table   *partition.Table                `msgpack:"t"`
	Members map[partition.MemberID]dirEntry `msgpack:"m"`
	// Applied is the raft index of the last command applied (kept in
	// snapshots, so that a member restored from one knows how far it is).
	Applied uint64 `msgpack:"i,omitempty"`
}

// Operations of a command.
const (
	opPutMember    uint8 = 1 // set Members[ID] = Entry
	opDeleteMember uint8 = 2 // delete Members[ID]
	opSetTable     uint8 = 3 // replace the table if its epoch is still Prev
)

// command is one raft log entry, msgpack-encoded.
type command struct {
	Op    uint8              `msgpack:"o"`
	ID    partition.MemberID `msgpack:"i,omitempty"`
	Entry dirEntry           `msgpack:"d,omitempty"`
	Prev  uint64             `msgpack:"p,omitempty"`
	Table *partition.Table   `msgpack:"t,omitempty"`
}

// errEpochMoved is the result of an opSetTable whose Prev is no longer the
// committed epoch (a concurrent change won; the coordinator re-plans).
var errEpochMoved = errors.New("control: table epoch moved")

// fsm is the raft FSM. raft calls Apply, Snapshot and Restore from its FSM
// goroutine, never concurrently; readers use the accessors from any
// goroutine.
type fsm struct {
	mu    sync.RWMutex
	st    state
	watch chan struct{} // closed and replaced when a newer table is committed
	// view and dir publish the table (with its watch channel) and an immutable copy of the
	// directory for the lock-free readers on the operation path (table, watchTable, member).
	// Both are replaced under mu whenever the state they mirror changes.
	view atomic.Pointer[tableView]
	dir  atomic.Pointer[map[partition.MemberID]dirEntry]
}

// tableView is a committed table and the channel closed once a newer one is committed.
type tableView struct {
	t     *partition.Table
	watch chan struct{}
}

func newFSM(count int) *fsm {
	f := &fsm{
		st:    state{Table: partition.NewTable(count), Members: map[partition.MemberID]dirEntry{}},
		watch: make(chan struct{}),
	}
	f.view.Store(&tableView{t: f.st.Table, watch: f.watch})
	f.publishDirLocked()
	return f
}

// publishDirLocked publishes a copy of the directory; f.mu is held (or f is not shared yet).
func (f *fsm) publishDirLocked() {
	d := maps.Clone(f.st.Members)
	f.dir.Store(&d)
}

// Apply applies one committed log entry. It returns nil, errEpochMoved or a
// decoding error (the response of the raft ApplyFuture).
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var c command
	err := msgpackcheck.Unmarshal(l.Data, &c) // entries come from the leader, over the network
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Applied = l.Index
	if err != nil {
		return fmt.Errorf("control: decode command at index %d: %w", l.Index, err)
	}
	switch c.Op {
	case opPutMember:
		f.st.Members[c.ID] = c.Entry
		f.publishDirLocked()
	case opDeleteMember:
		delete(f.st.Members, c.ID)
		f.publishDirLocked()
	case opSetTable:
		if err := f.checkTable(c.Table); err != nil {
			return fmt.Errorf("control: table at index %d: %w", l.Index, err)
		}
		if c.Prev != f.st.Table.Epoch || c.Table.Epoch <= f.st.Table.Epoch {
			return errEpochMoved
		}
		f.setTableLocked(c.Table)
	default:
		return fmt.Errorf("control: unknown command op %d at index %d", c.Op, l.Index)
	}
	return nil
}

// maxSnapshotSize bounds a snapshot Restore accepts. A snapshot is a table and a directory: 271
// partitions with 7 replicas each and a hundred members encode to well under 1 MiB.
const maxSnapshotSize = 64 << 20

// checkTable refuses a table this member could not route with: missing, of another partition
// count than the cluster's (which never changes), or breaking partition.Table's invariants.
// The leader only commits tables its planner made, so this guards against corrupt input, not
// against the planner.
func (f *fsm) checkTable(t *partition.Table) error {
	if t == nil {
		return errors.New("no table")
	}
	if n := f.table().Count(); t.Count() != n {
		return fmt.Errorf("table of %d partitions, the cluster has %d", t.Count(), n)
	}
	return t.Validate()
}

func (f *fsm) setTableLocked(t *partition.Table) {
	changed := t.Epoch != f.st.Table.Epoch
	f.st.Table = t
	if !changed {
		f.view.Store(&tableView{t: t, watch: f.watch})
		return
	}
	old := f.watch
	f.watch = make(chan struct{})
	// Publish before waking the watchers: one that calls watchTable again sees the new table.
	f.view.Store(&tableView{t: t, watch: f.watch})
	close(old)
}

// table returns the committed table (never modified afterwards).
func (f *fsm) table() *partition.Table {
	return f.view.Load().t
}

func (f *fsm) watchTable() (*partition.Table, <-chan struct{}) {
	v := f.view.Load()
	return v.t, v.watch
}

// appliedIndex is the raft index of the last command applied to the state.
func (f *fsm) appliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Applied
}

func (f *fsm) member(id partition.MemberID) (dirEntry, bool) {
	e, ok := (*f.dir.Load())[id]
	return e, ok
}

// snapshot returns the table and a copy of the directory.
func (f *fsm) snapshot() (*partition.Table, map[partition.MemberID]dirEntry) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Table, maps.Clone(f.st.Members)
}

// Snapshot encodes the state at once (it is small: a table and a directory).
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	b, err := msgpack.Marshal(&f.st)
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("control: encode snapshot: %w", err)
	}
	return fsmSnapshot(b), nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	// A snapshot may come from the leader over the network (InstallSnapshot): read at most
	// maxSnapshotSize and check the encoding before decoding, so a corrupt one is refused
	// instead of making this member allocate what its length prefixes claim.
	b, err := io.ReadAll(io.LimitReader(rc, maxSnapshotSize+1))
	if err != nil {
		return fmt.Errorf("control: read snapshot: %w", err)
	}
	if len(b) > maxSnapshotSize {
		return fmt.Errorf("control: snapshot larger than %d bytes", maxSnapshotSize)
	}
	var st state
	if err := msgpackcheck.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("control: decode snapshot: %w", err)
	}
	if err := f.checkTable(st.Table); err != nil {
		return fmt.Errorf("control: snapshot: %w", err)
	}
	if st.Members == nil {
		st.Members = map[partition.MemberID]dirEntry{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Members = st.Members
	f.publishDirLocked()
	f.st.Applied = st.Applied
	f.setTableLocked(st.Table)
	return nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("control: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

func encodeCommand(c command) ([]byte, error) {
	b, err := msgpack.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("control: encode command: %w", err)
	}
	return b, nil
}
