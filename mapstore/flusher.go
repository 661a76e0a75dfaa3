package mapstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// FlusherConfig is what a Flusher drives.
type FlusherConfig struct {
	// Queue is the write-behind queue to flush. Required.
	Queue *Queue
	// Store receives the batches; if it is a BatchStore, StoreAll and DeleteAll are used.
	// Required.
	Store Store
	// Locker guards Queue: the Flusher holds it while it touches the queue, and so must everyone
	// else. nil means a mutex of the Flusher's own; then add entries only through Flusher.Add.
	Locker sync.Locker
	// Logger receives store failures at Warn level. nil discards.
	Logger *slog.Logger
}

// Flusher stores a Queue's batches as they become due, with the real clock, on a goroutine it
// owns. It stops when Close is called or when the context given to NewFlusher ends.
type Flusher struct {
	q     *Queue
	store Store
	batch BatchStore // nil if Store cannot batch
	lock  sync.Locker
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}

	pmu      sync.Mutex
	progress chan struct{} // closed and replaced after every finished batch

	rejected atomic.Uint64 // entries the store refused for good (RejectedError)
}

// NewFlusher starts flushing cfg.Queue into cfg.Store until ctx ends or Close is called.
func NewFlusher(ctx context.Context, cfg FlusherConfig) (*Flusher, error) {
	var errs []error
	if cfg.Queue == nil {
		errs = append(errs, fmt.Errorf("%w: FlusherConfig.Queue is nil", ErrInvalidConfig))
	}
	if cfg.Store == nil {
		errs = append(errs, fmt.Errorf("%w: FlusherConfig.Store is nil", ErrInvalidConfig))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	f := &Flusher{
		q: cfg.Queue, store: cfg.Store, lock: cfg.Locker, log: cfg.Logger,
		done: make(chan struct{}), kick: make(chan struct{}, 1), progress: make(chan struct{}),
	}
	f.batch, _ = cfg.Store.(BatchStore)
	if f.lock == nil {
		f.lock = new(sync.Mutex)
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.ctx, f.cancel = context.WithCancel(ctx)
	go f.run()
	return f, nil
}

// Add waits until the queue's budget has room (or ctx ends: an error wrapping ErrDirtyLimit),
// then queues the write with the current time. A Seq of 0 numbers it after the last one.
func (f *Flusher) Add(ctx context.Context, e Entry) error {
	if err := f.q.Budget().Wait(ctx); err != nil {
		return err
	}
	f.lock.Lock()
	f.q.Add(e, time.Now())
	f.lock.Unlock()
	f.Kick()
	return nil
}

// Kick tells the flusher the queue changed; whoever adds to the queue under an external Locker
// calls it afterwards. It never blocks.
func (f *Flusher) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Flush returns once every write queued before the call has been stored, regardless of the
// write delay. After Close it returns ErrClosed. If ctx ends first it returns an error wrapping ErrFlushTimeout; the entries stay
// queued and are still retried.
func (f *Flusher) Flush(ctx context.Context) error {
	select {
	case <-f.done:
		return ErrClosed
	default:
	}
	f.lock.Lock()
	target := f.q.RequestFlush()
	f.lock.Unlock()
	f.Kick()
	for {
		f.pmu.Lock()
		ch := f.progress
		f.pmu.Unlock()
		f.lock.Lock()
		done := f.q.Flushed(target)
		s := f.q.Stats(time.Now())
		f.lock.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %d entries dirty, last store error %v: %w", ErrFlushTimeout, s.Entries, s.LastError, ctx.Err())
		case <-f.done:
			return ErrClosed
		}
	}
}

// Stats returns the queue's statistics.
func (f *Flusher) Stats() Stats {
	f.lock.Lock()
	s := f.q.Stats(time.Now())
	f.lock.Unlock()
	s.Rejected = f.rejected.Load()
	return s
}

// Close flushes until everything is stored or ctx ends, then stops the flusher's goroutine and
// waits for it. It returns the flush's error, if any. Entries still queued stay in the Queue.
func (f *Flusher) Close(ctx context.Context) error {
	var err error
	select {
	case <-f.done:
	default:
		err = f.Flush(ctx)
	}
	f.cancel()
	<-f.done
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return err
}

func (f *Flusher) run() {
	defer close(f.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		f.lock.Lock()
		now := time.Now()
		batch := f.q.Ready(now)
		next, ok := f.q.NextReady(now)
		f.lock.Unlock()
		if batch != nil {
			err := f.write(batch)
			f.lock.Lock()
			if err == nil {
				f.q.Ack(batch)
			} else {
				f.q.Fail(batch, time.Now(), err)
			}
			f.lock.Unlock()
			if err != nil {
				f.log.Warn("write-behind store failed; entries stay dirty", "entries", len(batch), "err", err)
			}
			f.pmu.Lock()
			close(f.progress)
			f.progress = make(chan struct{})
			f.pmu.Unlock()
			if f.ctx.Err() != nil {
				return
			}
			continue
		}
		if ok {
			timer.Reset(max(next.Sub(now), 0))
		}
		select {
		case <-f.kick:
		case <-timer.C:
		case <-f.ctx.Done():
			return
		}
		timer.Stop()
	}
}

// write stores one batch: StoreAll and DeleteAll when the store can batch, else one call per
// entry. Entries the store refuses for good are counted, logged and not retried.
func (f *Flusher) write(batch []Entry) error {
	err := f.writeCalls(batch)
	if rej := Rejected(err); rej != nil {
		f.rejected.Add(uint64(len(rej.Keys)))
		f.log.Error("write-behind store refused entries for good; they are not retried", "entries", len(rej.Keys), "err", err)
		return nil
	}
	return err
}

// writeCalls makes the store calls of one batch. A *RejectedError of one call does not stop the
// others: the rejections of every call are returned together.
func (f *Flusher) writeCalls(batch []Entry) error {
	var rejected RejectedError
	reject := func(err error) error {
		r := Rejected(err)
		if r == nil {
			return err
		}
		rejected.Keys = append(rejected.Keys, r.Keys...)
		rejected.Reasons = append(rejected.Reasons, r.Reasons...)
		return nil
	}
	if err := f.calls(batch, reject); err != nil {
		return err
	}
	if len(rejected.Keys) > 0 {
		return &rejected
	}
	return nil
}

func (f *Flusher) calls(batch []Entry, reject func(error) error) error {
	ctx := f.ctx
	if f.batch == nil {
		for _, e := range batch {
			var err error
			if e.Delete {
				err = f.store.Delete(ctx, e.Key)
			} else {
				err = f.store.Store(ctx, e.Key, e.Value)
			}
			if err = reject(err); err != nil {
				return err
			}
		}
		return nil
	}
	var keys, values, dels [][]byte
	for _, e := range batch {
		if e.Delete {
			dels = append(dels, e.Key)
		} else {
			keys = append(keys, e.Key)
			values = append(values, e.Value)
		}
	}
	if len(keys) > 0 {
		if err := reject(f.batch.StoreAll(ctx, keys, values)); err != nil {
			return err
		}
	}
	if len(dels) > 0 {
		return reject(f.batch.DeleteAll(ctx, dels))
	}
	return nil
}
