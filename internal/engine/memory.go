package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// The memory budget (Config.MemoryBudget) is enforced where writes are admitted, for every map
// and structure alike:
//
//   - memAccount keeps a running count of the bytes the member holds: every record of every
//     partition it owns, backs up or is receiving a copy of (key + value + recordOverhead, added
//     and subtracted as records are applied and removed), and the events held in its listeners'
//     queues (listener.Config.Held). It is exact at every moment, not a periodic look.
//   - An owner admits a write that would grow the member's memory (applyWrite, admitMemory) only
//     when the growth fits in the budget: the growth is reserved in the account before it is
//     applied (so concurrent writes of other partitions cannot overshoot together) and released
//     once it is. A write that does not grow memory (a delete, an overwrite with a value no
//     larger, a clear, a lock) always passes, so that users can free memory.
//   - A write that does not fit gets back-pressure first: ownerWrite lets go of the partition
//     and waits, bounded by the write's deadline and context, for room (the account signals
//     each decrease; the evictor is asked to evict clean entries of maps with a loader at once),
//     then tries again. When the deadline comes first, the write fails with ErrMemoryLimit,
//     applied nowhere.
//   - Backups: a backup applies every write its owner sends (refusing would leave it without a
//     write its owner kept), and tells the owner, in each acknowledgement, whether it is at its
//     budget; an owner refuses growing writes of a partition while one of its backups is, as
//     for its own memory, and asks that backup again (an empty backup batch) while a writer
//     waits. So a backup exceeds its budget at most by the writes in flight to it when it
//     reached it: one write batch per partition it backs up (synchronous backups), or the
//     asynchronous backlog (AsyncBackups). Copies (migrations, new backups) are never refused
//     either: the partition table decides where data lives. While they push a member over its
//     budget, its growing writes wait.

// memoryProbeInterval is how often a write waiting for a backup's room asks that backup again.
const memoryProbeInterval = 20 * time.Millisecond

// memAccount is a member's running count of the memory its budget covers. A nil *memAccount
// (no budget) counts nothing and admits everything.
type memAccount struct {
	budget int64
	used   atomic.Int64
	// waiters counts the writes waiting for room; only then does a decrease signal.
	waiters atomic.Int32
	mu      sync.Mutex
	room    chan struct{} // closed on a decrease while someone waits; replaced after
	// evict asks the evictor to run now (capacity 1), to make need more bytes of room below
	// the evictor's target (the largest write waiting).
	evict chan struct{}
	need  atomic.Int64
}

func newMemAccount(budget int64) *memAccount {
	if budget <= 0 {
		return nil
	}
	return &memAccount{budget: budget, room: make(chan struct{}), evict: make(chan struct{}, 1)}
}

// add counts n bytes more (n < 0: fewer) and wakes the writers waiting for room on a decrease.
func (a *memAccount) add(n int64) {
	if a == nil || n == 0 {
		return
	}
	a.used.Add(n)
	if n < 0 && a.waiters.Load() > 0 {
		a.signal()
	}
}

// signal wakes every writer waiting for room.
func (a *memAccount) signal() {
	a.mu.Lock()
	close(a.room)
	a.room = make(chan struct{})
	a.mu.Unlock()
}

// load is the memory counted now.
func (a *memAccount) load() int64 {
	if a == nil {
		return 0
	}
	return a.used.Load()
}

// full reports whether the member is at or over its budget (what a backup reports to owners).
func (a *memAccount) full() bool { return a != nil && a.used.Load() >= a.budget }

// reserve counts n more bytes if they fit in the budget and reports whether they did.
func (a *memAccount) reserve(n int64) bool {
	for {
		u := a.used.Load()
		if u+n > a.budget {
			return false
		}
		if a.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// unreserve takes back n bytes reserve counted. It does not wake waiting writers: the bytes are
// counted again, as the records applied meanwhile.
func (a *memAccount) unreserve(n int64) {
	if a != nil && n != 0 {
		a.used.Add(-n)
	}
}

// roomSignal returns the channel closed at the next decrease; the caller must have counted
// itself in waiters first.
func (a *memAccount) roomSignal() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.room
}

// kickEvictor asks the evictor to run now and make room for a write of grow bytes.
func (a *memAccount) kickEvictor(grow int64) {
	if a == nil {
		return
	}
	for {
		n := a.need.Load()
		if n >= grow || a.need.CompareAndSwap(n, grow) {
			break
		}
	}
	select {
	case a.evict <- struct{}{}:
	default:
	}
}

// memoryGrowth is how much applying w's mutations grows this member's records: a set adds its
// key, value and recordOverhead and frees the record it replaces, a delete frees its record, a
// clear the records it removes. Expired records a set replaces are not counted as freed, so the
// figure may be larger than the real growth, never smaller.
func memoryGrowth(w *writeBatch) int64 {
	var n int64
	for i := range w.muts {
		m := &w.muts[i]
		switch m.Kind {
		case mutSet:
			n += int64(len(m.Key) + len(m.Value) + recordOverhead)
			if prev := w.prevs[i]; prev.ok {
				n -= recordSize(prev)
			}
		case mutDelete:
			if prev := w.prevs[i]; prev.ok {
				n -= recordSize(prev)
			}
		case mutClear:
			for _, r := range m.cleared {
				n -= recordSize(r)
			}
		}
	}
	return n
}

// noRoom says why a write was not admitted: it needs grow bytes the member does not have, or
// its partition's backup member backup (not empty) reported that it is at its budget.
type noRoom struct {
	grow   int64
	backup partition.MemberID
}

// admitMemory reserves the growth of w's mutations in the member's account when they grow its
// memory, and returns the bytes reserved (to release once they are applied), or false when the
// write must wait for room. A write that does not grow memory is always admitted. The caller
// holds p.writeMu.
func (s *Service) admitMemory(p *part, w *writeBatch) (reserved int64, why noRoom, ok bool) {
	grow := memoryGrowth(w)
	if grow <= 0 {
		return 0, noRoom{}, true
	}
	if m := s.fullBackup(p); m != "" {
		return 0, noRoom{grow: grow, backup: m}, false
	}
	if s.mem != nil && !s.mem.reserve(grow) {
		return 0, noRoom{grow: grow}, false
	}
	return grow, noRoom{}, true
}

// waitForRoom waits, after a write was refused for want of memory (why), until room may have
// been freed (then the caller tries again) or until dl (zero: none) or ctx ends (then it returns
// the write's ErrMemoryLimit). It asks the evictor to run at once, and, when a backup was full,
// asks that backup again every memoryProbeInterval.
func (s *Service) waitForRoom(ctx context.Context, p *part, epoch uint64, dl time.Time, why noRoom) error {
	a := s.mem
	failed := func(what string) error {
		if why.backup != "" {
			return fmt.Errorf("%w: partition %d: backup %s stayed at its memory budget, waited %s", ErrMemoryLimit, p.id, why.backup, what)
		}
		return fmt.Errorf("%w: %d bytes more would exceed the budget of %d bytes (%d in use), waited %s",
			ErrMemoryLimit, why.grow, a.budget, a.load(), what)
	}
	var room <-chan struct{}
	var probe <-chan time.Time
	if why.backup != "" {
		t := time.NewTicker(memoryProbeInterval)
		defer t.Stop()
		probe = t.C
	} else {
		a.waiters.Add(1)
		defer a.waiters.Add(-1)
		room = a.roomSignal()
		// Check again now that this writer is counted: a decrease before it was would not
		// have signalled.
		if a.load()+why.grow <= a.budget {
			return nil
		}
		a.kickEvictor(why.grow)
	}
	var deadline <-chan time.Time
	if !dl.IsZero() {
		left := time.Until(dl)
		left -= refuseAhead(left)
		if left <= 0 {
			return failed("until the write's deadline")
		}
		t := time.NewTimer(left)
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-room:
			return nil
		case <-probe:
			if s.probeBackupRoom(ctx, p, epoch, why.backup) {
				return nil
			}
		case <-deadline:
			return failed("until the write's deadline")
		case <-ctx.Done():
			return failed("until the write's context ended (" + ctx.Err().Error() + ")")
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
}

// refuseAhead is how long before a write's deadline a write waiting for memory gives up, out of
// the left time: the write's deadline is its caller's, so a refusal sent at the deadline itself
// reached a remote caller after its call had ended, and the caller reported ErrTimeout (outcome
// unknown) instead of ErrMemoryLimit (applied nowhere). A quarter of the time left, at most
// 250 ms, leaves the answer its trip back even on a loaded machine.
func refuseAhead(left time.Duration) time.Duration { return min(left/4, 250*time.Millisecond) }

// fullBackups remembers which members said, in their last backup acknowledgement, that they are
// at their memory budget (see the top of this file).
type fullBackups struct {
	n  atomic.Int32 // members marked full: the write path reads only this while it is 0
	mu sync.Mutex
	m  map[partition.MemberID]bool
}

// note records member m's last answer: full or not.
func (f *fullBackups) note(m partition.MemberID, full bool) {
	if !full && f.n.Load() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[m] == full {
		return
	}
	if full {
		if f.m == nil {
			f.m = make(map[partition.MemberID]bool)
		}
		f.m[m] = true
		f.n.Add(1)
	} else {
		delete(f.m, m)
		f.n.Add(-1)
	}
}

// has reports whether member m said it is full.
func (f *fullBackups) has(m partition.MemberID) bool {
	if f.n.Load() == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[m]
}

// fullBackup returns a replica target of p that said it is at its memory budget, or "".
func (s *Service) fullBackup(p *part) partition.MemberID {
	if s.fullBackups.n.Load() == 0 {
		return ""
	}
	var buf [4]partition.MemberID
	for _, m := range appendReplicaTargets(buf[:0], s.cluster.Table(), p.id, s.self) {
		if s.fullBackups.has(m) {
			return m
		}
	}
	return ""
}

// noteBackupAnswer records what a backup's acknowledgement says of its memory (opResponse.Done:
// the backup is at its budget; see handleBackup).
func (s *Service) noteBackupAnswer(m partition.MemberID, resp opResponse) {
	s.fullBackups.note(m, resp.Status == statusOK && resp.Done)
}

// probeBackupRoom asks member m, a replica target of p, whether it has memory again: an empty
// backup batch, which applies nothing, is acknowledged with its memory state. It reports whether
// m has room.
func (s *Service) probeBackupRoom(ctx context.Context, p *part, epoch uint64, m partition.MemberID) bool {
	header, body, err := encodeBatch(int32(p.id), epoch, string(s.self), nil)
	if err != nil {
		return false
	}
	_, resp, err := s.callReplica(ctx, m, transport.Message{Type: msgBackup, Header: header, Body: body}, s.cfg.BackupAckTimeout, false)
	if err != nil {
		// A member that does not answer is the replication's business, not the budget's: let
		// the write try again (its replication will wait for or drop the member).
		s.fullBackups.note(m, false)
		return true
	}
	s.noteBackupAnswer(m, resp)
	return !resp.Done
}
