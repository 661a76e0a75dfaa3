package engine

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// opExecutePartition runs a partition processor on the owner of a partition.
const opExecutePartition opKind = 52

// RawPartitionProcessor is a processor over several entries of one map in one partition: the
// engine's primitive for structures that keep more than one entry per operation together, such
// as a queue (a head and tail entry and one entry per item) or a topic's ring of recent
// messages. It runs on the partition's owner with the partition's writes held back for its
// duration, so it is atomic with respect to the whole partition: its reads see no write of
// anyone else, and its writes are applied, replicated to the backups, persisted and published to
// listeners as one batch, all of them or (when it returns an error) none. Like a RawProcessor it
// must be quick and must not call the map itself. Key locks are not consulted: partition
// processors are meant for a façade's own maps, which users do not lock.
//
// A call retried after a lost answer (the owner died after replicating) is answered from the
// result the new owner remembers rather than run twice, as for entry processors: an Offer
// retried across a failover enqueues its item once.
type RawPartitionProcessor func(ctx context.Context, v *PartitionView, arg []byte) (result []byte, err error)

// PartitionView is what a RawPartitionProcessor reads and writes: the live entries of one map in
// one partition, with the processor's own writes visible to its later reads.
type PartitionView struct {
	mapName string
	part    partition.ID
	w       *writeBatch
	// writes are the processor's writes by key, in order (order keeps replication and events
	// deterministic); deleted marks removals.
	writes map[string]int
	order  []viewWrite
	// err is the first failure to read a paged-out value from the data folder: the processor's
	// run fails with it.
	err error
}

type viewWrite struct {
	key     string
	value   []byte
	deleted bool
}

// Map is the name of the map the view holds.
func (v *PartitionView) Map() string { return v.mapName }

// Partition is the partition the view holds.
func (v *PartitionView) Partition() partition.ID { return v.part }

// Get returns key's value (nil, false when absent or expired). The slice must not be kept or
// changed after the processor returns.
func (v *PartitionView) Get(key []byte) ([]byte, bool) {
	if i, ok := v.writes[string(key)]; ok {
		wr := v.order[i]
		return wr.value, !wr.deleted
	}
	r := v.w.rs.get(v.mapName, string(key), v.w.now)
	r, err := v.w.rs.fill(v.mapName, r) // a paged-out value is read from the data folder
	if err != nil {
		v.err = cmp.Or(v.err, err)
		return nil, false
	}
	return r.value, r.ok
}

// Set creates or replaces key's value. The view keeps value: don't change it afterwards.
func (v *PartitionView) Set(key, value []byte) { v.put(viewWrite{key: string(key), value: value}) }

// Delete removes key if it exists.
func (v *PartitionView) Delete(key []byte) { v.put(viewWrite{key: string(key), deleted: true}) }

func (v *PartitionView) put(wr viewWrite) {
	if v.writes == nil {
		v.writes = make(map[string]int)
	}
	if i, ok := v.writes[wr.key]; ok {
		v.order[i] = wr
		return
	}
	v.writes[wr.key] = len(v.order)
	v.order = append(v.order, wr)
}

// emit hands the view's writes to the batch: a delete only of a key that exists before the
// batch (one the processor created and removed again changes nothing).
func (v *PartitionView) emit() {
	for _, wr := range v.order {
		if !wr.deleted {
			v.w.emit(mutation{Map: v.mapName, Kind: mutSet, Key: []byte(wr.key), Value: wr.value})
			continue
		}
		if v.w.rs.get(v.mapName, wr.key, v.w.now).ok {
			v.w.emit(mutation{Map: v.mapName, Kind: mutDelete, Key: []byte(wr.key)})
		}
	}
}

// RegisterPartitionProcessor installs a partition processor under name on this member. Register
// the same processors on every member (the owner of a partition runs it). A name already taken
// (by a partition processor) is refused with ErrAlreadyRegistered.
func (s *Service) RegisterPartitionProcessor(name string, p RawPartitionProcessor) error {
	if name == "" || p == nil {
		return fmt.Errorf("%w: a partition processor needs a name and a function", ErrInvalidConfig)
	}
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	if _, taken := s.procs.byPart[name]; taken {
		return fmt.Errorf("%w: partition processor %q", ErrAlreadyRegistered, name)
	}
	if s.procs.byPart == nil {
		s.procs.byPart = make(map[string]RawPartitionProcessor)
	}
	s.procs.byPart[name] = p
	return nil
}

func (s *Service) partitionProcessor(name string) RawPartitionProcessor {
	s.procs.mu.RLock()
	defer s.procs.mu.RUnlock()
	return s.procs.byPart[name]
}

// ExecutePartition runs the partition processor registered as proc on the owner of partition p
// over this map's entries there, with arg, and returns its result. A processor's error arrives
// as ErrProcessor (matching a registered error value too, see RegisterProcessorError), and
// nothing it wrote is applied.
//
// When the owner applied the processor's writes but its synchronous backups did not all
// acknowledge them (the write's outcome is unknown: the owner keeps it, a failover to a backup
// that missed it would undo it), the error comes with the processor's result: a caller whose
// processor removed something (a queue's poll) must still get it.
func (m *Map) ExecutePartition(ctx context.Context, proc string, p partition.ID, arg []byte) ([]byte, error) {
	return m.ExecutePartitionAttempt(ctx, nil, proc, p, arg)
}

// An Attempt makes calls of ExecutePartitionAttempt one operation: every call with the same
// Attempt carries the same write ID, and every call after the first is marked a retry, so that
// an owner that applied an earlier call (whose answer the caller never got: a timeout, a lost
// connection) answers with the first call's answer and result instead of running the processor
// again, as long as it remembers it: at least MaxRetryWindow, unless the partition is written
// faster than its answer memory holds (answers.go). An owner that may have forgotten it answers
// ErrOutcomeUnknown instead of running the processor again. The zero Attempt is ready; it is
// not safe for concurrent use.
type Attempt struct {
	id   opID
	sent bool
	// first is when the operation's first call began: its calls' retries carry their age
	// from it (opRequest.Age).
	first time.Time
}

// ExecutePartitionAttempt is ExecutePartition as one attempt of the operation a (nil: a new
// operation).
func (m *Map) ExecutePartitionAttempt(ctx context.Context, a *Attempt, proc string, p partition.ID, arg []byte) ([]byte, error) {
	if err := m.ensureLoaded(ctx); err != nil {
		return nil, err
	}
	req := &opRequest{Map: m.name, Kind: opExecutePartition, Part: int32(p), Value: arg, Proc: proc, Holder: HolderFrom(ctx)}
	if a != nil {
		if a.first.IsZero() {
			a.first = time.Now() // before anything is sent: ages are never too short
		}
		req.ID, req.Retry, req.firstSent = a.id, a.sent, a.first
	}
	resp, err := m.s.do(ctx, req)
	if a != nil {
		a.id, a.sent = req.ID, true
	}
	if err == nil && resp.Status != statusOK {
		return resp.Value, m.s.respErr(resp)
	}
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

// executePartitionProcessor serves opExecutePartition on the owner.
func (s *Service) executePartitionProcessor(ctx context.Context, w *writeBatch, req *opRequest) opResponse {
	p := s.partitionProcessor(req.Proc)
	if p == nil {
		return opResponse{Status: statusNoProcessor, Msg: req.Proc}
	}
	v := &PartitionView{mapName: req.Map, part: partition.ID(req.Part), w: w}
	res, err := p(ctx, v, req.Value)
	if err == nil {
		err = v.err // it saw a key as absent that is not
	}
	if err != nil {
		return s.processorFailed(err, err.Error())
	}
	v.emit()
	if !req.ID.zero() && len(w.muts) > 0 && len(res) > 0 {
		// Remember the result with the change (see executeProcessor).
		w.emit(mutation{Kind: mutAnswer, Value: bytes.Clone(res)})
	}
	return opResponse{Done: true, Value: res}
}
