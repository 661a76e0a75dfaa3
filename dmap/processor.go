package dmap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"

	"github.com/gridmap/gridmap/partition"
)

// Entry processor operations.
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
	mu    sync.RWMutex
	byKey map[string]RawProcessor
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
			return s.processorFailed(err, fmt.Sprintf("key %q: %v", k, err))
		}
		out = append(out, kv{Key: []byte(k), Value: res})
	}
	return opResponse{Entries: out}
}

// MutableEntry is the typed entry a Processor works on.
type MutableEntry[K comparable, V any] struct {
	Key    K
	Value  V // the zero value when the entry does not exist
	Exists bool

	raw  *RawEntry
	vals Codec[V]
	err  error
}

// SetValue replaces (or creates) the entry's value.
func (e *MutableEntry[K, V]) SetValue(v V) {
	b, err := e.vals.Encode(v)
	if err != nil {
		e.err = err
		return
	}
	e.raw.SetValue(b)
}

// Delete removes the entry.
func (e *MutableEntry[K, V]) Delete() { e.raw.Delete() }

// Processor is a typed entry processor: it receives the entry and the caller's argument and
// returns a result for the caller (see RawProcessor for where and how it runs).
type Processor[K comparable, V any, A any, R any] func(ctx context.Context, e *MutableEntry[K, V], arg A) (R, error)

// RegisterProcessor installs a typed processor under name on the member of svc, using the
// default codecs for keys, values, arguments and results. Register it on every member. A name
// already taken on this member is refused with ErrAlreadyRegistered.
//
// Keys and values are decoded with DefaultCodec whatever codecs the map was opened with, so
// for a map opened with WithKeyCodec or WithValueCodec the processor would see wrong keys or
// values and write values the map cannot read: use RegisterMapProcessor for such a map.
func RegisterProcessor[K comparable, V any, A any, R any](svc *Service, name string, fn Processor[K, V, A, R]) error {
	return registerProcessor(svc, name, DefaultCodec[K](), DefaultCodec[V](), fn)
}

// RegisterMapProcessor installs a typed processor under name on the member of m, decoding keys
// and values and encoding the values it sets with m's key and value codecs (those given to New
// with WithKeyCodec and WithValueCodec); arguments and results use DefaultCodec, as Execute
// does. Register it on every member, each with its own member's Map. Processors are
// registered per member, not per map: run it on m's map, or on maps with the same codecs. A
// name already taken on this member is refused with ErrAlreadyRegistered.
func RegisterMapProcessor[K comparable, V any, A any, R any](m *Map[K, V], name string, fn Processor[K, V, A, R]) error {
	return registerProcessor(m.svc, name, m.keys, m.vals, fn)
}

// registerProcessor wraps a typed processor in a RawProcessor that decodes keys and values
// with keys and vals, and arguments and results with DefaultCodec.
func registerProcessor[K comparable, V any, A any, R any](svc *Service, name string, keys Codec[K], vals Codec[V], fn Processor[K, V, A, R]) error {
	if fn == nil {
		return fmt.Errorf("%w: nil processor", ErrInvalidConfig)
	}
	args, results := DefaultCodec[A](), DefaultCodec[R]()
	return svc.RegisterProcessor(name, func(ctx context.Context, raw *RawEntry, argb []byte) ([]byte, error) {
		k, err := keys.Decode(raw.Key)
		if err != nil {
			return nil, err
		}
		e := &MutableEntry[K, V]{Key: k, Exists: raw.Exists, raw: raw, vals: vals}
		if raw.Exists {
			if e.Value, err = vals.Decode(raw.Value); err != nil {
				return nil, err
			}
		}
		arg, err := args.Decode(argb)
		if err != nil {
			return nil, err
		}
		r, err := fn(ctx, e, arg)
		if err != nil {
			return nil, err
		}
		if e.err != nil {
			return nil, e.err
		}
		return results.Encode(r)
	})
}

// Execute runs the processor registered as name on key's owner and returns its result.
//
// The result type R comes first among the type parameters because it is the only one the
// arguments do not tell: K and V come from m, A from arg, so a call names R alone, as in
// Execute[int](ctx, m, "incr", key, 5).
func Execute[R any, K comparable, V any, A any](ctx context.Context, m *Map[K, V], name string, key K, arg A) (R, error) {
	var zero R
	ab, err := DefaultCodec[A]().Encode(arg)
	if err != nil {
		return zero, err
	}
	kb, p, err := m.encodeKey(key)
	if err != nil {
		return zero, err
	}
	resp, err := m.svc.do(ctx, &opRequest{Map: m.name, Kind: opExecute, Part: int32(p), Key: kb, Value: ab, Proc: name, Holder: holderFrom(ctx)})
	if err == nil && resp.Status != statusOK {
		err = m.svc.respErr(resp)
	}
	if err != nil {
		return zero, err
	}
	return DefaultCodec[R]().Decode(resp.Value)
}

// Result is one key's result of ExecuteOnKeys or ExecuteOnEntries.
type Result[K comparable, R any] struct {
	Key   K
	Value R
}

// ExecuteOnKeys runs the processor on every key, in parallel across the owners, and yields the
// results as they arrive (in no particular order). On failure it yields one error and stops.
//
// As with Execute, a call names the result type alone: ExecuteOnKeys[int](ctx, m, name, keys, arg).
func ExecuteOnKeys[R any, K comparable, V any, A any](ctx context.Context, m *Map[K, V], name string, keys []K, arg A) iter.Seq2[Result[K, R], error] {
	return parallelStream(ctx, len(keys), func(ctx context.Context, i int) ([]Result[K, R], error) {
		r, err := Execute[R](ctx, m, name, keys[i], arg)
		return []Result[K, R]{{Key: keys[i], Value: r}}, err
	})
}

// ExecuteOnEntries runs the processor on every entry of the map, each partition atomically on
// its owner, partitions in parallel, and yields the results as they arrive.
//
// Each partition's run happens at least once, not exactly once as with Execute: the run
// carries no operation ID, because its answer (a result per entry) is too large for the owner
// to remember (see answers.go). When the call to a partition's owner fails after the owner may
// have applied the run (the connection or the reply is lost, or the owner dies after its
// backups received the run's changes), the call is sent again, to the same or the new owner,
// and the processor runs a second time on every entry of that partition, on the values the
// first run left; the results yielded for that partition are those of the last run. A
// partition whose run was answered is never run again by this call, and a run the owner
// refused (it did not own the partition, had lost its lease, or a key was locked by another
// holder) was not applied. When a repeat matters, make the processor idempotent (set values
// rather than add to them) or use ExecuteOnKeys, whose Execute calls are exactly once.
//
// As with Execute, a call names the result type alone: ExecuteOnEntries[int](ctx, m, name, arg).
func ExecuteOnEntries[R any, K comparable, V any, A any](ctx context.Context, m *Map[K, V], name string, arg A) iter.Seq2[Result[K, R], error] {
	return parallelStream(ctx, len(m.svc.parts), func(ctx context.Context, i int) ([]Result[K, R], error) {
		ab, err := DefaultCodec[A]().Encode(arg)
		if err != nil {
			return nil, err
		}
		resp, err := m.svc.do(ctx, &opRequest{Map: m.name, Kind: opExecuteAll, Part: int32(i), Value: ab, Proc: name, Holder: holderFrom(ctx)})
		if err == nil && resp.Status != statusOK {
			err = m.svc.respErr(resp)
		}
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", partition.ID(i), err)
		}
		out := make([]Result[K, R], 0, len(resp.Entries))
		for _, e := range resp.Entries {
			k, err := m.keys.Decode(e.Key)
			if err != nil {
				return nil, err
			}
			r, err := DefaultCodec[R]().Decode(e.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, Result[K, R]{Key: k, Value: r})
		}
		return out, nil
	})
}

// streamWorkers bounds the concurrent requests of one streaming call.
const streamWorkers = 8

// parallelStream runs task 0..n-1 with bounded parallelism and yields their results as they
// complete. Stopping the iteration early cancels the tasks still running.
func parallelStream[T any](ctx context.Context, n int, task func(ctx context.Context, i int) ([]T, error)) iter.Seq2[T, error] {
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
