package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
)

const (
	opExecute    opKind = iota + 50 // run a processor on one key
	opExecuteAll                    // run a processor on every entry of a map in one partition
)

// RawProcessor is an entry processor on encoded keys and values. It runs on the owner of the
// entry, with the partition's writes held back for its duration, so it is atomic with respect
// to the key (and its partition): it must be quick and must not call the map itself. Its
// changes are replicated to the backups like any write. arg is the caller's encoded argument;
// the result is returned to the caller. Slices passed in must not be kept.
type RawProcessor func(ctx context.Context, e *RawEntry, arg []byte) (result []byte, err error)

// RawEntry is the entry a RawProcessor works on.
type RawEntry struct {
	Map    string
	Key    []byte
	Value  []byte // nil when the entry does not exist
	Exists bool

	set      bool
	deleted  bool
	newValue []byte
}

// SetValue replaces (or creates) the entry's value.
func (e *RawEntry) SetValue(v []byte) { e.set, e.deleted, e.newValue = true, false, v }

// Delete removes the entry.
func (e *RawEntry) Delete() { e.set, e.deleted, e.newValue = false, true, nil }

// processors is a member's registry of entry processors and of the error values they may
// return (RegisterProcessorError).
type processors struct {
	mu     sync.RWMutex
	byKey  map[string]RawProcessor
	byPart map[string]RawPartitionProcessor // partition_processor.go
	// errs are the registered error values by name; errNames lists the names in registration
	// order, the order an owner tries them in.
	errs     map[string]error
	errNames []string
}

// RegisterProcessorError registers err under name as an error value entry processors may
// return. When a processor's error matches err (errors.Is), on whichever member the processor
// ran, the caller of Execute, ExecuteOnKeys or ExecuteOnEntries gets an error that matches both
// ErrProcessor and err, with the processor's message: errors.Is(err, ErrOutOfStock) works as if
// the processor had run locally. The name travels between members, not the value, so register
// the same values under the same names on every member, as the processors themselves. An error
// that matches no registered value arrives as ErrProcessor with its message alone; one that
// matches several is carried as the first registered. A name or a value already registered on
// this member is refused with ErrAlreadyRegistered.
func (s *Service) RegisterProcessorError(name string, err error) error {
	if name == "" || err == nil {
		return fmt.Errorf("%w: a processor error needs a name and a value", ErrInvalidConfig)
	}
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	if _, taken := s.procs.errs[name]; taken {
		return fmt.Errorf("%w: processor error %q", ErrAlreadyRegistered, name)
	}
	for other, v := range s.procs.errs {
		if v == err {
			return fmt.Errorf("%w: processor error value %v (as %q)", ErrAlreadyRegistered, err, other)
		}
	}
	if s.procs.errs == nil {
		s.procs.errs = make(map[string]error)
	}
	s.procs.errs[name] = err
	s.procs.errNames = append(s.procs.errNames, name)
	return nil
}

// procErrTag frames the name of a registered error value at the start of a statusProcessor
// message: tag, name, tag, then the processor's message.
const procErrTag = "\x00"

// processorFailed is the owner's answer to a processor that returned err; text is the message
// for the caller. A registered error value's name travels with it.
func (s *Service) processorFailed(err error, text string) opResponse {
	s.procs.mu.RLock()
	defer s.procs.mu.RUnlock()
	for _, name := range s.procs.errNames {
		if errors.Is(err, s.procs.errs[name]) {
			return opResponse{Status: statusProcessor, Msg: procErrTag + name + procErrTag + text}
		}
	}
	return opResponse{Status: statusProcessor, Msg: text}
}

// processorErr is a processor's failure as the caller sees it: ErrProcessor and, when the
// processor returned a registered value, that value.
type processorErr struct {
	msg string
	val error
}

func (e *processorErr) Error() string   { return ErrProcessor.Error() + ": " + e.msg }
func (e *processorErr) Unwrap() []error { return []error{ErrProcessor, e.val} }

// respErr is the error of an answer to a processor operation: resp.Status.err, except that a
// processor's failure carries the registered error value it matched.
func (s *Service) respErr(resp opResponse) error {
	if resp.Status != statusProcessor || !strings.HasPrefix(resp.Msg, procErrTag) {
		return resp.Status.err(resp.Msg)
	}
	name, text, ok := strings.Cut(resp.Msg[len(procErrTag):], procErrTag)
	if !ok {
		return resp.Status.err(resp.Msg)
	}
	s.procs.mu.RLock()
	val := s.procs.errs[name]
	s.procs.mu.RUnlock()
	if val == nil {
		return resp.Status.err(fmt.Sprintf("%s (error %q is not registered on this member)", text, name))
	}
	return &processorErr{msg: text, val: val}
}

// RegisterProcessor installs an entry processor under name on this member. Register the same
// processors on every member (the owner of a key runs it). A name already taken on this member
// is refused with ErrAlreadyRegistered: silently replacing it would let two parts of a program
// run different code under one name, and members that replaced it at different times disagree.
func (s *Service) RegisterProcessor(name string, p RawProcessor) error {
	if name == "" || p == nil {
		return fmt.Errorf("%w: processor needs a name and a function", ErrInvalidConfig)
	}
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	if s.procs.byKey == nil {
		s.procs.byKey = make(map[string]RawProcessor)
	}
	if _, taken := s.procs.byKey[name]; taken {
		return fmt.Errorf("%w: processor %q", ErrAlreadyRegistered, name)
	}
	s.procs.byKey[name] = p
	return nil
}

func (s *Service) processor(name string) RawProcessor {
	s.procs.mu.RLock()
	defer s.procs.mu.RUnlock()
	return s.procs.byKey[name]
}

// runProcessor applies p to one entry inside a write batch.
func runProcessor(ctx context.Context, w *writeBatch, p RawProcessor, mapName string, key, arg []byte) ([]byte, error) {
	e := &RawEntry{Map: mapName, Key: key}
	if r := w.rs.get(mapName, string(key), w.now); r.ok {
		r, err := w.rs.fill(mapName, r) // a paged-out value is read from the data folder
		if err != nil {
			return nil, err
		}
		e.Value, e.Exists = r.value, true
	}
	res, err := p(ctx, e, arg)
	if err != nil {
		return nil, err
	}
	switch {
	case e.set:
		w.emit(mutation{Map: mapName, Kind: mutSet, Key: key, Value: e.newValue})
	case e.deleted && e.Exists:
		w.emit(mutation{Map: mapName, Kind: mutDelete, Key: key})
	}
	return res, nil
}

// executeProcessor serves opExecute on the owner.
func (s *Service) executeProcessor(ctx context.Context, w *writeBatch, req *opRequest) opResponse {
	p := s.processor(req.Proc)
	if p == nil {
		return opResponse{Status: statusNoProcessor, Msg: req.Proc}
	}
	if st := w.rs.lockedAgainst(req.Map, req.Key, req.Holder, w.now); st != statusOK {
		return opResponse{Status: st}
	}
	res, err := runProcessor(ctx, w, p, req.Map, req.Key, req.Value)
	if err != nil {
		return s.processorFailed(err, err.Error())
	}
	resp := opResponse{Done: true, Value: res}
	if !req.ID.zero() && len(w.muts) > 0 && len(res) > 0 {
		// Remember the result with the change, atomically: a caller that lost the answer (the
		// owner died after replicating) gets it from the new owner instead of a second run
		// (answers.go; applyWrite marks a batch's last mutation with the answer).
		w.emit(mutation{Kind: mutAnswer, Value: bytes.Clone(res)})
	}
	return resp
}

// executeProcessorAll serves opExecuteAll: the processor runs on every live entry of the map in
// the partition, all in one atomic batch.
func (s *Service) executeProcessorAll(ctx context.Context, w *writeBatch, req *opRequest) opResponse {
	p := s.processor(req.Proc)
	if p == nil {
		return opResponse{Status: statusNoProcessor, Msg: req.Proc}
	}
	var keys []string
	for r := range w.rs.all(req.Map) {
		if r.expired(w.now) {
			continue
		}
		if st := w.rs.lockedAgainst(req.Map, []byte(r.key), req.Holder, w.now); st != statusOK {
			return opResponse{Status: st} // wait for the lock, then run on the whole partition
		}
		keys = append(keys, r.key)
	}
	out := make([]kv, 0, len(keys))
	for _, k := range keys {
		res, err := runProcessor(ctx, w, p, req.Map, []byte(k), req.Value)
		if err != nil {
			// All or nothing: the keys done before this one change nothing either.
			w.muts, w.prevs, w.cleared = w.muts[:0], w.prevs[:0], nil
			return s.processorFailed(err, fmt.Sprintf("key %q: %v", k, err))
		}
		out = append(out, kv{Key: []byte(k), Value: res})
	}
	return opResponse{Entries: out}
}

// streamWorkers bounds the concurrent requests of one streaming call.
const streamWorkers = 8

// ParallelStream runs task 0..n-1 with bounded parallelism and yields their results as they
// complete. Stopping the iteration early cancels the tasks still running.
func ParallelStream[T any](ctx context.Context, n int, task func(ctx context.Context, i int) ([]T, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type out struct {
			items []T
			err   error
		}
		results := make(chan out)
		next := make(chan int)
		var wg sync.WaitGroup
		for range min(streamWorkers, n) {
			wg.Go(func() {
				for i := range next {
					items, err := task(ctx, i)
					select {
					case results <- out{items, err}:
					case <-ctx.Done():
						return
					}
				}
			})
		}
		go func() {
			defer close(next)
			for i := range n {
				select {
				case next <- i:
				case <-ctx.Done():
					return
				}
			}
		}()
		go func() { wg.Wait(); close(results) }()
		defer func() {
			cancel()
			for range results { // let the workers finish before returning
			}
		}()
		var zero T
		for r := range results {
			if r.err != nil {
				yield(zero, r.err)
				return
			}
			for _, it := range r.items {
				if !yield(it, nil) {
					return
				}
			}
		}
	}
}
