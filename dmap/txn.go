package dmap

import (
	"context"

	"github.com/gridmap/gridmap/internal/engine"
)

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
	e *engine.Tx
}

// Begin starts a transaction on this member. Begin, Commit and Rollback all take a context, as
// every call of a transaction's life does. Begin itself contacts no other member (the
// transaction binds to a partition with its first key), so ctx only refuses a context that has
// already ended (ErrTimeout wrapping ctx.Err()); a closed service refuses with ErrClosed.
func (s *Service) Begin(ctx context.Context) (*Tx, error) {
	etx, err := s.e.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &Tx{e: etx}, nil
}

// TxMap is a map seen through a transaction.
type TxMap[K comparable, V any] struct {
	tx *Tx
	m  *Map[K, V]
}

// InTx returns m as seen by tx.
func InTx[K comparable, V any](tx *Tx, m *Map[K, V]) *TxMap[K, V] { return &TxMap[K, V]{tx: tx, m: m} }

// Get returns the value of key as the transaction sees it, or ErrNotFound.
func (t *TxMap[K, V]) Get(ctx context.Context, key K) (V, error) {
	var zero V
	kb, p, err := t.m.encodeKey(key)
	if err != nil {
		return zero, err
	}
	v, ok, err := t.tx.e.Get(ctx, t.m.raw, kb, p)
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
	kb, p, err := t.m.encodeKey(key)
	if err != nil {
		return err
	}
	return t.tx.e.Put(t.m.raw, kb, p, vb, o.ttl)
}

// Delete removes key when the transaction commits; deleting an absent entry does nothing. Like
// Put it does not read the entry, so it cannot say whether the entry exists: Get it first in
// the transaction to learn that, which also makes the commit fail with ErrConflict if the entry
// changes before it. ctx is not used (no round trip).
func (t *TxMap[K, V]) Delete(ctx context.Context, key K) error {
	kb, p, err := t.m.encodeKey(key)
	if err != nil {
		return err
	}
	return t.tx.e.Delete(t.m.raw, kb, p)
}

// Rollback abandons the transaction; nothing of it is applied. It returns ErrTxDone if the
// transaction was already committed or rolled back, and nil otherwise, so
// `defer tx.Rollback(ctx)` right after Begin is the way to make sure an abandoned transaction
// ends (its error after a Commit is that ErrTxDone, to be ignored). Nothing of a transaction
// reaches another member before Commit, so Rollback is local and takes effect whatever ctx's
// state: ctx gives it the shape of Begin and Commit.
func (tx *Tx) Rollback(ctx context.Context) error { return tx.e.Rollback(ctx) }

// Commit applies the transaction's writes atomically, or none of them (ErrConflict: an entry
// the transaction read changed). A
// transaction that only read validates that everything it read is still current, so a nil
// error means its reads were a consistent snapshot.
func (tx *Tx) Commit(ctx context.Context) error { return tx.e.Commit(ctx) }

// RunTx runs fn in a new transaction and commits it. When fn or the commit fails with
// ErrConflict (an entry the transaction read changed), it runs fn again in a fresh transaction
// after a short, growing, randomized pause, until the commit succeeds or ctx ends; then it
// returns the last conflict, wrapped with ctx's error. Any other error from fn or Commit ends
// it: the transaction is rolled back (nothing of it applied, unless Commit's error is ErrTimeout,
// after which the commit may or may not have been applied) and the error returned. fn may run
// several times, so it must not have effects outside the transaction; it should use ctx for
// the transaction's reads.
func (s *Service) RunTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.e.RunTx(ctx, func(etx *engine.Tx) error { return fn(&Tx{e: etx}) })
}
