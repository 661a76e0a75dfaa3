package engine

import (
	"context"
	"fmt"
	"github.com/gridmap/gridmap/internal/replicadisk"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/internal/writebehind"
	"github.com/gridmap/gridmap/partition"
)

// Service is one member's share of every map: the record stores of the partitions it owns or
// backs up, the handlers that serve other members, and the driver that copies partitions when
// the table asks for it. Maps are typed views on a Service (see New).
type Service struct {
	// leaving: the member leaves gracefully (BeginLeave).
	leaving atomic.Bool
	cfg     Config
	cluster Cluster
	caller  Caller
	self    partition.MemberID
	log     *slog.Logger
	parts   []*part
	procs   processors
	// observers see every write this member applies as an owner (listeners, write-behind).
	observers []observer
	// stores holds the persistence of the maps configured with a store (read-only after
	// NewService).
	stores    map[string]*persistence
	flushKick chan struct{}
	loads     flights    // read-through loads in progress
	loadMu    sync.Mutex // serialises initial loads on this member
	loaded    sync.Map   // map name -> true once this member triggered its initial load
	// events holds the entry, cluster-wide and partition listeners (events.go).
	events *eventHub
	// stash holds copies of values this member's callers write through remote owners while
	// it is a backup of their partition (callercopy.go).
	stash valueStash
	// opPrefix starts the IDs of this member's writes (answers.go).
	opPrefix uint64
	// started is when the service was created (monoNow): the answer memory of a partition it
	// restores from the data folders begins then (restore.go).
	started int64
	// ops holds the operation counters of the maps opened on this member (opstats.go).
	ops opRegistry
	// copiesDone counts the partition copies the migration driver completed as a source
	// (migrations, new backups).
	copiesDone atomic.Uint64
	// copiesFailed counts the partition copies the migration driver started that failed (each
	// is retried after a pause, see copyBackoff).
	copiesFailed atomic.Uint64
	// copyBytes counts the bytes of the entry chunks this member sent in partition copies
	// (migrations, new backups, resyncs), whether the copy completed or not.
	copyBytes atomic.Uint64
	// resyncsDone counts the full copies this member completed as owner to a backup that may
	// lack writes (resync.go), which copiesDone does not.
	resyncsDone atomic.Uint64
	// acks tells slow replica targets from dead ones (ackwatch.go), with heard (nil when the
	// caller does not tell) saying when each peer's frames last arrived.
	acks  ackWatch
	heard lastHeardCaller

	ctx    context.Context // cancelled by Close; owns the service's goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// spawnMu orders spawn before Close's wait: once stopping is set no goroutine is added.
	spawnMu  sync.RWMutex
	stopping bool
	// folders: the data folders' identities and memory (folders.go); nil without Disk.
	folders *folderBook
	// mem counts the memory Config.MemoryBudget covers (nil: no budget; memory.go), and
	// fullBackups the members that said they are at theirs.
	mem         *memAccount
	fullBackups fullBackups

	// testRestoreChecked is set by tests only (nil otherwise, before the service serves): serveOp
	// calls it between the restore check (ensureRestored) and the ownership check of an
	// operation on a partition of the data folder, and calls what it returns once that attempt
	// is answered. A test changes the table there, so that this member becomes the owner after
	// ensureRestored found it was not (the race notRestored answers).
	testRestoreChecked func(p partition.ID) (answered func())
}

// part is the runtime state of one partition on this member.
type part struct {
	id partition.ID
	// writeMu serialises the writes of the partition with their replication, so that backups
	// apply them in the owner's order, and lets a hand-off pause writers.
	writeMu sync.Mutex
	// mu guards rs; held only briefly, never across I/O.
	mu sync.RWMutex
	rs *recordStore
	// seenEpoch is the newest table epoch stamped on a backup or copy message received for the
	// partition (guarded by mu).
	seenEpoch uint64
	// lostAt is the LostAt (see partition.Assignment) of the partition's incarnation this
	// member's data belongs to: when the table's is newer, the data is of an earlier
	// incarnation, lost, and is dropped before the partition is served (enterIncarnation).
	// Written under mu.
	lostAt atomic.Uint64
	// async is the ordered queue of mutations still to be sent to backups (AsyncBackups).
	async asyncQueue
	// queues are the write-behind queues of the maps with a store, by map name (guarded by mu).
	queues map[string]*writebehind.Queue

	// Failover resync (resync.go). ownEpoch is the table epoch at which this member, as owner,
	// last took the partition over (or one it owned it through without interruption since); a
	// write at another epoch takes it over again first.
	ownEpoch atomic.Uint64
	// takingOver: a background takeover (startTakeOvers) is running.
	takingOver atomic.Bool
	// unsure: this replica may differ from its owner; only a full copy clears it (guarded by mu).
	unsure bool
	// shadow receives a full copy while this member is a replica, which keeps serving (and
	// stays promotable) from rs until the copy is complete, then swaps (guarded by mu).
	shadow *part
	// resync lists the backups this owner must send a full copy to, resyncing those a runner is
	// copying to (guarded by mu).
	resync, resyncing map[partition.MemberID]bool
	// missed lists the replica targets that may lack a write this owner stopped waiting for
	// (missedWrite): a copy to one of them that began before (a migration or a resync) must
	// not count as complete (guarded by mu).
	missed map[partition.MemberID]bool
	// pending is the write this member, as owner, applied and is replicating to synchronous
	// backups that have not all acknowledged it yet (guarded by mu; nil: none). Reads of its
	// keys answer with what they held before it (see read), so that no read returns a write
	// that could still die with this member. Writes of a partition are serialised until their
	// backups acknowledged, so there is at most one.
	pending *writeBatch
	// retried holds the IDs of the last maxRetried retries this member, as owner, decided
	// afresh, oldest first (guarded by mu; see answers.go).
	retried []opID

	// The data folder (embedded.go, restore.go). disk is the member's (nil for a shadow and
	// without a data folder); diskLife is the life of the copy this member's folder holds of
	// the partition in this process (0: none written yet; guarded by mu). restored is set once
	// the partition's restore is complete (its restoreMap "done" record is held); restoreMu
	// serialises restorers.
	disk     *replicadisk.Disk
	diskLife uint64
	// noPaging: a folder write of the partition failed since its copy was last written whole,
	// so the folder may lack values memory has: no entry may be paged out (paging.go; guarded
	// by mu).
	noPaging  bool
	restored  atomic.Bool
	restoreMu sync.Mutex
}

// observer is told about the writes this member applies as a partition's owner. ownerApplied is
// called once the write is visible to reads: after its synchronous backups acknowledged it (with
// asynchronous backups, once it is queued for them), never for a write that died unacknowledged
// with a closing or deposed owner (see settle). It runs on the writing goroutine with the
// partition's writes held back: in order per partition, and it must not block. prevs[i] is the live record muts[i] replaced or removed (the zero record if none). The
// slices and values must not be modified; values may be kept (stored bytes are never rewritten).
type observer interface {
	ownerApplied(p partition.ID, muts []mutation, prevs []record)
}

// NewService creates a member's map service and registers its handlers on reg. Close stops it.
func NewService(cfg Config, cluster Cluster, caller Caller, reg Registrar) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cluster == nil || caller == nil || reg == nil {
		return nil, fmt.Errorf("%w: cluster, caller and registrar are required", ErrInvalidConfig)
	}
	// The partition count is the cluster's: its table has every partition from the start (an
	// epoch-0 table of empty assignments before the first plan).
	partitions := cluster.Table().Count()
	if partitions < 1 {
		return nil, fmt.Errorf("%w: the cluster's table has no partitions", ErrInvalidConfig)
	}
	prefix, err := newOpIDPrefix()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		opPrefix: prefix,
		started:  monoNow(),
		cfg:      cfg,
		cluster:  cluster,
		caller:   caller,
		self:     cluster.LocalID(),
		log:      cfg.Logger,
		parts:    make([]*part, partitions),
		ctx:      ctx,
		cancel:   cancel,
		mem:      newMemAccount(cfg.MemoryBudget),
		acks:     ackWatch{base: time.Now()},
	}
	s.heard, _ = caller.(lastHeardCaller)
	for i := range s.parts {
		s.parts[i] = &part{id: partition.ID(i), rs: s.newRecordStore(), disk: cfg.Disk}
	}
	if cfg.Disk != nil {
		if s.folders, err = newFolderBook(cfg.Disk, time.Now()); err != nil {
			cancel()
			return nil, err
		}
	}
	s.stores = make(map[string]*persistence)
	s.flushKick = make(chan struct{}, flushWorkers)
	for _, configured := range []map[string]MapConfig{cfg.Maps, cfg.StructureMaps} {
		for name, mc := range configured {
			if mc.Store == nil && mc.Loader == nil {
				continue
			}
			s.stores[name] = newPersistence(name, mc)
		}
	}
	if s.events, err = newEventHub(s); err != nil {
		cancel()
		return nil, err
	}
	s.observers = append(s.observers, s.events)
	reg.Handle(msgEvents, transport.HandlerFunc(s.handleEvents))
	reg.Handle(msgListenerRegs, transport.HandlerFunc(s.handleListenerRegs))
	s.events.start()
	reg.Handle(msgOp, transport.AsyncRecycling(opHandler{s}))
	// Applying a batch takes only the partition's lock (held briefly, never across I/O): run it
	// on the connection's reader, without a hand-off to a worker goroutine.
	reg.Handle(msgBackup, transport.InlineRecycling(transport.HandlerFunc(s.handleBackup)))
	reg.Handle(msgSyncBegin, transport.HandlerFunc(s.handleSyncBegin))
	reg.Handle(msgSyncChunk, transport.HandlerFunc(s.handleSyncChunk))
	reg.Handle(msgResyncProbe, transport.HandlerFunc(s.handleResyncProbe))
	reg.Handle(msgSyncEnd, transport.HandlerFunc(s.handleSyncEnd))
	reg.Handle(msgSyncQueue, transport.HandlerFunc(s.handleSyncQueue))
	reg.Handle(msgSyncRegs, transport.HandlerFunc(s.handleListenerRegs)) // forwarded lists apply like the registrants'
	reg.Handle(msgLoad, transport.HandlerFunc(s.handleLoad))
	reg.Handle(msgRestoreMark, transport.HandlerFunc(s.handleRestoreMark))
	reg.Handle(msgRestoreFetch, transport.HandlerFunc(s.handleRestoreFetch))
	reg.Handle(msgDiskSync, transport.HandlerFunc(s.handleDiskSync))
	s.wg.Add(3)
	go s.runEvictor()
	if s.hasWriteBehind() {
		s.wg.Add(flushWorkers)
		for i := range flushWorkers {
			go s.runFlusher(i)
		}
	}
	go s.runMigrations()
	if cfg.Disk != nil {
		s.wg.Add(1 + restoreWorkers)
		go s.runFolderRecorder()
		for i := range restoreWorkers {
			go s.runRestorer(i)
		}
	}
	go s.runExpiry()
	return s, nil
}

// Close stops the service's goroutines. Operations in flight fail with ErrClosed. Close does
// not hand partitions off: the member's graceful leave does that before closing the service.
func (s *Service) Close() error {
	s.spawnMu.Lock()
	s.stopping = true
	s.spawnMu.Unlock()
	s.recordLastFolders()
	s.cancel()
	s.wg.Wait()
	s.events.close()
	return nil
}

// newRecordStore returns an empty record store counted in the member's memory account.
func (s *Service) newRecordStore() *recordStore {
	rs := newRecordStore()
	rs.mem = s.mem
	return rs
}

func (s *Service) closed() bool { return s.ctx.Err() != nil }

// spawn runs f on a goroutine of the service (Close waits for it) and reports true, or reports
// false once Close has begun. Goroutines started on the way of an operation use it, since they
// may start while Close is waiting.
func (s *Service) spawn(f func()) bool {
	s.spawnMu.RLock()
	defer s.spawnMu.RUnlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// Go runs f on a goroutine of the service, with a context that ends when Close begins (Close
// waits for f), and reports true; once Close has begun it runs nothing and reports false.
// Services built on the engine use it for work a caller started but does not wait for (a
// queue's return of the items its taker gave up on).
func (s *Service) Go(f func(ctx context.Context)) bool {
	return s.spawn(func() { f(s.ctx) })
}

// Logger returns the service's logger (Config.Logger).
func (s *Service) Logger() *slog.Logger { return s.log }

func (s *Service) now() int64 { return s.cfg.Now().UnixNano() }

// runExpiry removes expired entries from every partition this member holds.
func (s *Service) runExpiry() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.sweepExpired(s.now()) // events.go: owners report Expired events
		s.releaseOrphanLocks()
	}
}

// PartitionCount is the number of partitions of the cluster.
func (s *Service) PartitionCount() int { return len(s.parts) }

// PartitionOf returns the partition of a partition key (an encoded key, or the PartitionKey of
// a PartitionAware key).
func (s *Service) PartitionOf(pk []byte) partition.ID { return partition.Of(pk, len(s.parts)) }
