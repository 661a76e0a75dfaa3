package control

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// raftRef is the node's current raft instance with its transport and
// stores. RecoverQuorum replaces the instance (see replace); everyone else
// reaches raft through raftRef's methods, which read the current instance
// atomically, so a replacement is race-free and a call that races with one
// lands on the old instance (shut down: it fails or reports no leader) or on
// the new one.
type raftRef struct {
	cur atomic.Pointer[raftInst]
	// leaderCh receives a value (coalesced) whenever the current instance
	// gains or loses leadership, and after a replacement.
	leaderCh chan bool

	mu        sync.Mutex // serializes replace and Shutdown; guards the fields below
	closed    bool
	observers []*raft.Observer
}

// raftInst is one raft instance. The stores outlive it: a replacement
// reuses them (they are in memory, see Node.startRaft).
type raftInst struct {
	r     *raft.Raft
	trans *raft.NetworkTransport
	logs  *raft.InmemStore // log and stable store
	snaps *raft.InmemSnapshotStore
	stop  chan struct{} // ends forward
	done  chan struct{} // closed when forward returned
}

func newRaftRef() *raftRef { return &raftRef{leaderCh: make(chan bool, 1)} }

// set installs in as the current instance (the first one, or the
// replacement of one that replace already stopped) and starts forwarding its
// leadership changes. h.mu is held, or h is not shared yet.
func (h *raftRef) setLocked(in *raftInst) {
	in.stop, in.done = make(chan struct{}), make(chan struct{})
	for _, o := range h.observers {
		in.r.RegisterObserver(o)
	}
	h.cur.Store(in)
	go h.forward(in)
	h.signal(in.r.State() == raft.Leader)
}

// forward relays in's leadership changes to leaderCh until in is stopped.
func (h *raftRef) forward(in *raftInst) {
	defer close(in.done)
	ch := in.r.LeaderCh()
	for {
		select {
		case v := <-ch:
			h.signal(v)
		case <-in.stop:
			return
		}
	}
}

func (h *raftRef) signal(v bool) {
	select {
	case h.leaderCh <- v:
	default:
	}
}

// stopForward stops in's forwarder and waits for it.
func (in *raftInst) stopForward() {
	close(in.stop)
	<-in.done
}

// replace runs fn on the current instance with every other replacement and
// Shutdown excluded. fn may return a new instance (it then owns shutting the
// old one down: it is not used again) or nil to keep the current one.
func (h *raftRef) replace(fn func(old *raftInst) (*raftInst, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	old := h.cur.Load()
	in, err := fn(old)
	if in != nil {
		old.stopForward()
		h.setLocked(in)
	}
	return err
}

func (h *raftRef) inst() *raftInst { return h.cur.Load() }

// transport is the current instance's transport.
func (h *raftRef) transport() *raft.NetworkTransport { return h.inst().trans }

// Shutdown shuts the current instance down for good: no replacement
// follows.
func (h *raftRef) Shutdown() raft.Future {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := h.inst()
	if !h.closed {
		h.closed = true
		in.stopForward()
	}
	return in.r.Shutdown()
}

// LeaderCh is signalled on every leadership change of the current instance
// and after a replacement; the value is not meaningful (check State).
func (h *raftRef) LeaderCh() <-chan bool { return h.leaderCh }

func (h *raftRef) RegisterObserver(o *raft.Observer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.observers = append(h.observers, o)
	h.inst().r.RegisterObserver(o)
}

func (h *raftRef) DeregisterObserver(o *raft.Observer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, x := range h.observers {
		if x == o {
			h.observers = append(h.observers[:i], h.observers[i+1:]...)
			break
		}
	}
	h.inst().r.DeregisterObserver(o)
}

// The methods below are raft.Raft's, on the current instance.

func (h *raftRef) State() raft.RaftState { return h.inst().r.State() }
func (h *raftRef) LeaderWithID() (raft.ServerAddress, raft.ServerID) {
	return h.inst().r.LeaderWithID()
}
func (h *raftRef) LastContact() time.Time                     { return h.inst().r.LastContact() }
func (h *raftRef) GetConfiguration() raft.ConfigurationFuture { return h.inst().r.GetConfiguration() }
func (h *raftRef) Barrier(timeout time.Duration) raft.Future  { return h.inst().r.Barrier(timeout) }
func (h *raftRef) Snapshot() raft.SnapshotFuture              { return h.inst().r.Snapshot() }
func (h *raftRef) LeadershipTransfer() raft.Future            { return h.inst().r.LeadershipTransfer() }
func (h *raftRef) BootstrapCluster(c raft.Configuration) raft.Future {
	return h.inst().r.BootstrapCluster(c)
}
func (h *raftRef) Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture {
	return h.inst().r.Apply(cmd, timeout)
}
func (h *raftRef) AddVoter(id raft.ServerID, addr raft.ServerAddress, prev uint64, timeout time.Duration) raft.IndexFuture {
	return h.inst().r.AddVoter(id, addr, prev, timeout)
}
func (h *raftRef) AddNonvoter(id raft.ServerID, addr raft.ServerAddress, prev uint64, timeout time.Duration) raft.IndexFuture {
	return h.inst().r.AddNonvoter(id, addr, prev, timeout)
}
func (h *raftRef) DemoteVoter(id raft.ServerID, prev uint64, timeout time.Duration) raft.IndexFuture {
	return h.inst().r.DemoteVoter(id, prev, timeout)
}
func (h *raftRef) RemoveServer(id raft.ServerID, prev uint64, timeout time.Duration) raft.IndexFuture {
	return h.inst().r.RemoveServer(id, prev, timeout)
}
