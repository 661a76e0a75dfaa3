package engine

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/gridmap/gridmap/partition"
)

// Backups from the caller's copy.
//
// A large value written through a remote owner crosses the network twice when the caller's
// member is itself one of the partition's backups: to the owner, and back to the caller's
// member in the owner's backup message. With three members and one backup that is a third of
// all remote writes, and for large values those bytes are what a write costs (1 MiB puts on
// loopback spend about 70% of the CPU in the kernel's copies and TCP processing, and the
// receiver zeroes each new frame buffer besides). So the caller's member keeps a copy of the
// value (a stash entry) while it waits, names it in the request (StashAt, Stash), and the
// owner sends that backup the write without its value; the backup applies the write with its
// stashed copy. The copy costs one memory copy; what it saves costs two copies through the
// kernel, the TCP work and the zeroing.
//
// It is only a shortcut, never needed for correctness: a backup message naming a copy that is
// not (or no longer) held is refused, and the owner's retry sends the value as usual. Only the
// owner's inline path (inlineWrite) sends stash references, for a single write of that value;
// the ordinary path, retries, asynchronous backups, copies and every other member get the
// value itself. An entry lives from just before the request is sent until the call returns
// (the backup's acknowledgement precedes the owner's answer, so by then it was used), so the
// stash holds at most one value per caller waiting.

// stashMin is the value size from which a caller's member that is a backup keeps a copy. Below
// it, the bytes saved on the wire are worth less than the stash's bookkeeping.
const stashMin = 16 << 10

// valueStash holds copies of values this member's callers are writing through remote owners.
// The zero value is ready to use.
type valueStash struct {
	mu   sync.Mutex
	next uint64
	held map[uint64]stashed
	// taken counts the values backups took instead of receiving them (tests check the path is
	// used).
	taken atomic.Uint64
	// lose makes take find nothing, as when the caller gave up waiting before the backup came
	// (tests of the owner's resend).
	lose atomic.Bool
}

type stashed struct {
	key   string
	value []byte
}

// put keeps a copy of value, written to key, and returns the token naming it (never 0).
func (st *valueStash) put(key, value []byte) uint64 {
	e := stashed{key: string(key), value: bytes.Clone(value)}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.held == nil {
		st.held = make(map[uint64]stashed)
	}
	st.next++
	st.held[st.next] = e
	return st.next
}

// take removes and returns the copy named token, if it is held and was written to key. The
// copy then belongs to the caller.
func (st *valueStash) take(token uint64, key []byte) ([]byte, bool) {
	st.mu.Lock()
	e, ok := st.held[token]
	if ok && e.key == string(key) && !st.lose.Load() {
		delete(st.held, token)
	} else {
		ok = false
	}
	st.mu.Unlock()
	if ok {
		st.taken.Add(1)
	}
	return e.value, ok
}

// drop forgets the copy named token, if it is still held.
func (st *valueStash) drop(token uint64) {
	st.mu.Lock()
	delete(st.held, token)
	st.mu.Unlock()
}

// len is the number of copies held.
func (st *valueStash) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.held)
}

// stashFor keeps a copy of req's value when this member is a backup of the request's partition
// in t and the value is worth it, names the copy in req and returns its token (0: no copy).
// The caller drops the token once the call returned.
func (s *Service) stashFor(t *partition.Table, req *opRequest) uint64 {
	switch req.Kind {
	case opPut, opPutIfAbsent, opReplace, opReplaceIfSame:
	default:
		return 0
	}
	if len(req.Value) < stashMin || s.cfg.AsyncBackups || !t.IsReplica(partition.ID(req.Part), s.self) {
		return 0
	}
	req.StashAt, req.Stash = s.self, s.stash.put(req.Key, req.Value)
	return req.Stash
}

// unstash forgets the copy named in req, if any, and clears the reference, so that the
// request can be routed again (maybe to this member, maybe with other backups).
func (s *Service) unstash(req *opRequest) {
	if req.Stash != 0 {
		s.stash.drop(req.Stash)
	}
	req.StashAt, req.Stash = "", 0
}
