package engine

import (
	"bytes"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// opKind names a single-key operation.
type opKind uint8

const (
	opGet opKind = iota + 1
	opContains
	opPut
	opPutIfAbsent
	opReplace
	opReplaceIfSame
	opDelete
	// Per-partition operations, routed like single-key ones but without a key.
	opSize
	opScanKeys
	opScanEntries
	opClear
	opFlush // store everything written so far (write-behind)
)

// writes reports whether the operation may change the entry (and so needs the write path:
// lease, sequence number, backups).
func (k opKind) writes() bool {
	switch k {
	case opPut, opPutIfAbsent, opReplace, opReplaceIfSame, opDelete, opClear,
		opLock, opTryLock, opUnlock, opExecute, opExecuteAll, opExecutePartition, opTxCommit:
		return true
	}
	return false
}

// perPartition reports whether the operation addresses a whole partition rather than a key.
func (k opKind) perPartition() bool {
	switch k {
	case opSize, opScanKeys, opScanEntries, opClear, opExecuteAll, opExecutePartition:
		return true
	}
	return false
}

// opRequest is a single-key operation as routed to a partition owner. The value travels in the
// message body.
type opRequest struct {
	Map   string
	Kind  opKind
	Part  int32
	Epoch uint64
	Key   []byte
	// TTL in nanoseconds for writes; 0 means the entry never expires.
	TTL int64
	// Expect is the value ReplaceIfSame compares with.
	Expect []byte
	// Holder identifies the lock holder on whose behalf the operation runs ("" = none): lock
	// operations, and writes that may pass a lock the caller holds.
	Holder string
	// Proc names the entry processor of opExecute; its argument travels in Value.
	Proc string
	// ID identifies one write across its attempts (Service.do gives it once), so that an owner
	// that already applied it answers a retry with its first answer (answers.go). Zero: none
	// (reads).
	ID opID
	// Retry marks an attempt after the first of the same operation (ID): only a retry may have
	// been applied already, so only a retry makes the owner look its ID up (answers.go).
	Retry bool
	// Age is, for a retry, how long before it was sent the operation's first attempt was
	// sent, on the caller's monotonic clock (ageUnknown from a peer that does not send it): an
	// owner that may have forgotten the first attempt's answer refuses to decide the retry
	// again (answers.go).
	Age time.Duration
	// StashAt and Stash name the copy of Value the caller's member holds when it is one of the
	// partition's backups (see callercopy.go): the owner then sends that backup the write without
	// its value. Zero: no copy.
	StashAt partition.MemberID
	Stash   uint64
	// Timeout is the time the caller had left for the operation when it sent it, in
	// microseconds (0: none). It is relative because members' clocks differ: the owner turns it
	// into deadline, on its own monotonic clock, when the request arrives.
	Timeout uint64
	Value   []byte
	// firstSent is when the operation's first attempt was sent or served (zero: none yet),
	// for Age; the caller's only (Service.route, Attempt).
	firstSent time.Time
	// deadline bounds the owner's work for the operation (zero: none): the catch-up wait, the
	// write lock's queue, back-pressure, stores and the backups' acknowledgements. It is set
	// where the request enters the owner (handleOp, tryServeOp, do for its own member).
	deadline time.Time
	// borrowed marks a Value that still belongs to the Map's caller: it may travel to a remote
	// owner as it is (the transport does not read a request after the call returned), but this
	// member copies it before serving the operation itself: large values are stored as they
	// are, and events and backups keep the mutation's value.
	borrowed bool
	// ops receives the operation's statistics (nil: not counted); set by the Map handle.
	ops *mapOps
}

// opResponse is the owner's answer. Get returns the value in the message body.
type opResponse struct {
	Status status
	// Done: the conditional write happened, or the key was present (ContainsKey, Delete).
	Done bool
	// Epoch is the owner's table epoch, so that a re-routed caller knows what to wait for.
	Epoch uint64
	Msg   string
	// Version is the sequence number of the record Get returned (what a transaction validates
	// at commit).
	Version uint64
	// Count answers opSize.
	Count int
	Value []byte
	// Entries is the decoded or local form of a scan result.
	Entries []kv
	// owned marks a Value that belongs to the caller alone (it arrived in a message from a
	// remote owner), rather than a record's, which must not be handed out.
	owned bool
}

// execute runs a single-key operation against a partition's records. It is pure: it reads the
// store and returns the response and, for a write that changes something, the mutation to apply
// and replicate. The caller numbers and applies the mutation (writeBatch.emit).
func execute(rs *recordStore, req *opRequest, now int64) (resp opResponse, mut mutation, changes bool) {
	cur := rs.get(req.Map, string(req.Key), now)
	set := func() mutation {
		m := mutation{Map: req.Map, Kind: mutSet, Key: req.Key, Value: req.Value}
		if req.TTL > 0 {
			m.ExpireAt = now + req.TTL
		}
		return m
	}
	switch req.Kind {
	case opGet:
		if !cur.ok {
			return opResponse{Status: statusNotFound}, mutation{}, false
		}
		rs.touch(req.Map, cur, now) // atomic: readers hold only the partition's read lock
		if cur.paged {
			var err error
			if cur, err = rs.fill(req.Map, cur); err != nil {
				return opResponse{Status: statusOf(err), Msg: err.Error()}, mutation{}, false
			}
		}
		return opResponse{Done: true, Value: cur.value, Version: cur.seq}, mutation{}, false
	case opContains:
		return opResponse{Done: cur.ok}, mutation{}, false
	case opPut:
		return opResponse{Done: true}, set(), true
	case opPutIfAbsent:
		if cur.ok {
			return opResponse{}, mutation{}, false
		}
		return opResponse{Done: true}, set(), true
	case opReplace:
		if !cur.ok {
			return opResponse{}, mutation{}, false
		}
		return opResponse{Done: true}, set(), true
	case opReplaceIfSame:
		if cur.paged {
			var err error
			if cur, err = rs.fill(req.Map, cur); err != nil {
				return opResponse{Status: statusOf(err), Msg: err.Error()}, mutation{}, false
			}
		}
		if !cur.ok || !bytes.Equal(cur.value, req.Expect) {
			return opResponse{}, mutation{}, false
		}
		return opResponse{Done: true}, set(), true
	case opDelete:
		if !cur.ok {
			return opResponse{}, mutation{}, false
		}
		return opResponse{Done: true}, mutation{Map: req.Map, Kind: mutDelete, Key: req.Key}, true
	}
	return opResponse{Status: statusBadRequest, Msg: "unknown operation"}, mutation{}, false
}
