package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// opTxCommit commits a transaction on its partition's owner.
const opTxCommit opKind = 60

// Tx is the untyped core of a transaction (dmap.Tx is its typed view): a transaction over one or more maps whose keys share a partition ("co-keyed" keys, see
// PartitionAware). Reads see the transaction's own writes; nothing is visible to others until
// Commit, which applies every write atomically on the partition's owner: readers, backups and
// listeners see all of it or none of it. Commit fails with ErrConflict, applying nothing, if an
// entry the transaction read (Get) was changed by someone else since the transaction first read
// it (optimistic concurrency: of two conflicting transactions, one commits). Put and Delete of
// an entry the transaction has not read are blind writes: they cost no round trip and commit
// whatever the entry holds by then, as a plain Put or Delete would; Get the entry first to make
// the commit depend on it. RunTx retries a transaction that conflicts. A Tx is safe for
// concurrent use but meant for one goroutine.
type Tx struct {
	svc *Service
	// id is the commit's operation ID: a commit retried after a lost answer is answered as the
	// first attempt was (answers.go) instead of failing as a conflict.
	id opID

	mu    sync.Mutex
	part  partition.ID
	bound bool // part is set by the first key
	// seen holds the version of each key the transaction read (Get), which the commit
	// validates; keys only written are not in it (blind writes).
	seen   map[txKey]uint64
	writes map[txKey]int // index into order
	order  []txWrite
	done   bool
}

type txKey struct{ mapName, key string }

// Begin starts a transaction on this member. It contacts no other member, so ctx only refuses
// a context that has already ended (ErrTimeout wrapping ctx.Err()); a closed service refuses
// with ErrClosed.
func (s *Service) Begin(ctx context.Context) (*Tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: beginning a transaction: %w", ErrTimeout, err)
	}
	if s.closed() {
		return nil, ErrClosed
	}
	return &Tx{svc: s, id: s.newOpID(), seen: map[txKey]uint64{}, writes: map[txKey]int{}}, nil
}

// bind checks that key's partition is the transaction's (the first key chooses it).
func (tx *Tx) bind(p partition.ID) error {
	if tx.done {
		return ErrTxDone
	}
	if !tx.bound {
		tx.part, tx.bound = p, true
		return nil
	}
	if p != tx.part {
		return fmt.Errorf("%w: partition %d, the transaction's is %d", ErrCrossPartition, p, tx.part)
	}
	return nil
}

// key binds the transaction to p and returns key's identity in it; the caller holds tx.mu.
func (tx *Tx) key(m *Map, key []byte, p partition.ID) (txKey, error) {
	if err := tx.bind(p); err != nil {
		return txKey{}, err
	}
	return txKey{m.name, string(key)}, nil
}

// Get returns the value of key (of map m, in partition p) as the transaction sees it, and
// whether it exists: its own write if it wrote the key, else the committed value, whose
// version the commit then validates.
func (tx *Tx) Get(ctx context.Context, m *Map, key []byte, p partition.ID) ([]byte, bool, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	k, err := tx.key(m, key, p)
	if err != nil {
		return nil, false, err
	}
	if i, ok := tx.writes[k]; ok {
		w := tx.order[i]
		return w.Value, !w.Delete, nil
	}
	resp, err := m.KeyOp(ctx, opGet, key, p, nil, false, 0, nil)
	if err != nil {
		return nil, false, err
	}
	if _, ok := tx.seen[k]; !ok {
		tx.seen[k] = resp.Version
	} else if tx.seen[k] != resp.Version {
		return nil, false, fmt.Errorf("%w: %s changed during the transaction", ErrConflict, m.name)
	}
	return resp.Value, resp.Status == statusOK, nil
}

// Put records a write of value under key (of map m, in partition p), applied at commit. It
// does not read the entry (a blind write).
func (tx *Tx) Put(m *Map, key []byte, p partition.ID, value []byte, ttl time.Duration) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	k, err := tx.key(m, key, p)
	if err != nil {
		return err
	}
	tx.record(k, txWrite{Map: m.name, Key: key, Value: value, TTL: int64(ttl)})
	return nil
}

// Delete records the removal of key (of map m, in partition p), applied at commit. It does
// not read the entry.
func (tx *Tx) Delete(m *Map, key []byte, p partition.ID) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	k, err := tx.key(m, key, p)
	if err != nil {
		return err
	}
	tx.record(k, txWrite{Map: m.name, Key: key, Delete: true})
	return nil
}

func (tx *Tx) record(k txKey, w txWrite) {
	if i, ok := tx.writes[k]; ok {
		tx.order[i] = w
		return
	}
	tx.writes[k] = len(tx.order)
	tx.order = append(tx.order, w)
}

// Rollback abandons the transaction; nothing of it is applied. It returns ErrTxDone if the
// transaction was already committed or rolled back. It is local (nothing of a transaction
// reaches another member before Commit), whatever ctx's state.
func (tx *Tx) Rollback(ctx context.Context) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.done {
		return ErrTxDone
	}
	tx.done = true
	return nil
}

// Commit applies the transaction's writes atomically, or none of them (ErrConflict: an entry
// the transaction read changed). A
// transaction that only read validates that everything it read is still current, so a nil
// error means its reads were a consistent snapshot.
func (tx *Tx) Commit(ctx context.Context) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.done {
		return ErrTxDone
	}
	tx.done = true
	if len(tx.order) == 0 && len(tx.seen) == 0 {
		return nil
	}
	c := txCommit{Writes: tx.order}
	for k, v := range tx.seen {
		c.Reads = append(c.Reads, txRead{Map: k.mapName, Key: []byte(k.key), Version: v})
	}
	body, err := encodeTxCommit(&c)
	if err != nil {
		return err
	}
	resp, err := tx.svc.do(ctx, &opRequest{Kind: opTxCommit, Part: int32(tx.part), Value: body, Holder: HolderFrom(ctx), ID: tx.id})
	if err == nil && resp.Status != statusOK {
		err = resp.Status.err(resp.Msg)
	}
	return err
}

// RunTx runs fn in a new transaction and commits it. When fn or the commit fails with
// ErrConflict (an entry the transaction read changed), it runs fn again in a fresh transaction
// after a short, growing, randomized pause, until the commit succeeds or ctx ends; then it
// returns the last conflict, wrapped with ctx's error. Any other error from fn or Commit ends
// it: the transaction is rolled back (nothing of it applied, unless Commit's error is ErrTimeout,
// after which the commit may or may not have been applied) and the error returned. fn may run
// several times, so it must not have effects outside the transaction; it should use ctx for
// the transaction's reads.
func (s *Service) RunTx(ctx context.Context, fn func(tx *Tx) error) error {
	const minPause, maxPause = time.Millisecond, 100 * time.Millisecond
	pause := minPause
	for {
		err := s.runTxOnce(ctx, fn)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		t := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w; gave up retrying: %w", err, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, maxPause)
	}
}

// runTxOnce runs fn in one transaction and commits it, rolling it back if fn fails or panics.
func (s *Service) runTxOnce(ctx context.Context, fn func(tx *Tx) error) error {
	tx, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }() // after Commit, ErrTxDone and nothing else
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// executeTx validates and applies a transaction on the owner, in one write batch.
func executeTx(w *writeBatch, req *opRequest) opResponse {
	c, err := decodeTxCommit(req.Value)
	if err != nil {
		return opResponse{Status: statusBadRequest, Msg: "undecodable transaction"}
	}
	for _, r := range c.Reads {
		var cur uint64
		if rec := w.rs.get(r.Map, string(r.Key), w.now); rec.ok {
			cur = rec.seq
		}
		if cur != r.Version {
			return opResponse{Status: statusConflict, Msg: fmt.Sprintf("map %s changed since the transaction read it", r.Map)}
		}
	}
	for _, wr := range c.Writes {
		if st := w.rs.lockedAgainst(wr.Map, wr.Key, req.Holder, w.now); st != statusOK {
			return opResponse{Status: st}
		}
	}
	for _, wr := range c.Writes {
		if wr.Delete {
			if w.rs.get(wr.Map, string(wr.Key), w.now).ok {
				w.emit(mutation{Map: wr.Map, Kind: mutDelete, Key: wr.Key})
			}
			continue
		}
		m := mutation{Map: wr.Map, Kind: mutSet, Key: wr.Key, Value: wr.Value}
		if wr.TTL > 0 {
			m.ExpireAt = w.now + wr.TTL
		}
		w.emit(m)
	}
	return opResponse{Done: true}
}

var errReservedName = errors.New("map names starting with a NUL byte are reserved")
