package dmap

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/partition"
)

// opTxCommit commits a transaction on its partition's owner.
const opTxCommit opKind = 60

// Tx is a transaction over one or more maps whose keys share a partition ("co-keyed" keys, see
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

// txRead is a version the commit validates: the record's sequence number when the transaction
// first touched it (0: absent).
type txRead struct {
	Map     string `msgpack:"m"`
	Key     []byte `msgpack:"k"`
	Version uint64 `msgpack:"v"`
}

type txWrite struct {
	Map    string `msgpack:"m"`
	Key    []byte `msgpack:"k"`
	Delete bool   `msgpack:"d,omitempty"`
	Value  []byte `msgpack:"v,omitempty"`
	TTL    int64  `msgpack:"t,omitempty"`
}

type txCommit struct {
	Reads  []txRead  `msgpack:"r"`
	Writes []txWrite `msgpack:"w"`
}

// Begin starts a transaction on this member. Begin, Commit and Rollback all take a context, as
// every call of a transaction's life does. Begin itself contacts no other member (the
// transaction binds to a partition with its first key), so ctx only refuses a context that has
// already ended (ErrTimeout wrapping ctx.Err()); a closed service refuses with ErrClosed.
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

// TxMap is a map seen through a transaction.
type TxMap[K comparable, V any] struct {
	tx *Tx
	m  *Map[K, V]
}

// InTx returns m as seen by tx.
func InTx[K comparable, V any](tx *Tx, m *Map[K, V]) *TxMap[K, V] { return &TxMap[K, V]{tx: tx, m: m} }

// key encodes key and binds the transaction to its partition; the caller holds tx.mu.
func (t *TxMap[K, V]) key(key K) (txKey, error) {
	kb, p, err := t.m.encodeKey(key)
	if err != nil {
		return txKey{}, err
	}
	if err := t.tx.bind(p); err != nil {
		return txKey{}, err
	}
	return txKey{t.m.name, string(kb)}, nil
}

// touch returns the key's value as the transaction sees it: its own write if any, otherwise
// the committed value, whose version the commit then validates; the caller holds tx.mu.
func (t *TxMap[K, V]) touch(ctx context.Context, key K) ([]byte, bool, error) {
	k, err := t.key(key)
	if err != nil {
		return nil, false, err
	}
	if i, ok := t.tx.writes[k]; ok {
		w := t.tx.order[i]
		return w.Value, !w.Delete, nil
	}
	resp, err := t.m.keyOp(ctx, opGet, key, nil, 0, nil)
	if err != nil {
		return nil, false, err
	}
	if _, ok := t.tx.seen[k]; !ok {
		t.tx.seen[k] = resp.Version
	} else if t.tx.seen[k] != resp.Version {
		return nil, false, fmt.Errorf("%w: %s changed during the transaction", ErrConflict, t.m.name)
	}
	return resp.Value, resp.Status == statusOK, nil
}

// Get returns the value of key as the transaction sees it, or ErrNotFound.
func (t *TxMap[K, V]) Get(ctx context.Context, key K) (V, error) {
	t.tx.mu.Lock()
	defer t.tx.mu.Unlock()
	var zero V
	v, ok, err := t.touch(ctx, key)
	if err != nil {
		return zero, err
	}
	if !ok {
		return zero, ErrNotFound
	}
	return t.m.vals.Decode(v)
}

// Put stores value under key when the transaction commits. It does not read the entry: unless
// the transaction read it before (Get), the commit overwrites whatever it holds then. ctx is
// not used (no round trip); it is kept for symmetry with Map.Put.
func (t *TxMap[K, V]) Put(ctx context.Context, key K, value V, opts ...PutOption) error {
	var o putOptions
	for _, f := range opts {
		f(&o)
	}
	vb, err := t.m.vals.Encode(value)
	if err != nil {
		return err
	}
	t.tx.mu.Lock()
	defer t.tx.mu.Unlock()
	k, err := t.key(key)
	if err != nil {
		return err
	}
	t.tx.record(k, txWrite{Map: t.m.name, Key: []byte(k.key), Value: vb, TTL: int64(o.ttl)})
	return nil
}

// Delete removes key when the transaction commits; deleting an absent entry does nothing. Like
// Put it does not read the entry, so it cannot say whether the entry exists: Get it first in
// the transaction to learn that, which also makes the commit fail with ErrConflict if the entry
// changes before it. ctx is not used (no round trip).
func (t *TxMap[K, V]) Delete(ctx context.Context, key K) error {
	t.tx.mu.Lock()
	defer t.tx.mu.Unlock()
	k, err := t.key(key)
	if err != nil {
		return err
	}
	t.tx.record(k, txWrite{Map: t.m.name, Key: []byte(k.key), Delete: true})
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
// transaction was already committed or rolled back, and nil otherwise, so
// `defer tx.Rollback(ctx)` right after Begin is the way to make sure an abandoned transaction
// ends (its error after a Commit is that ErrTxDone, to be ignored). Nothing of a transaction
// reaches another member before Commit, so Rollback is local and takes effect whatever ctx's
// state: ctx gives it the shape of Begin and Commit.
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
	body, err := msgpack.Marshal(&c)
	if err != nil {
		return fmt.Errorf("%w: transaction: %v", ErrCodec, err)
	}
	resp, err := tx.svc.do(ctx, &opRequest{Kind: opTxCommit, Part: int32(tx.part), Value: body, Holder: holderFrom(ctx), ID: tx.id})
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
	var c txCommit
	if err := msgpack.Unmarshal(req.Value, &c); err != nil {
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
