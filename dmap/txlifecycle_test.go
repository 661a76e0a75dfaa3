package dmap

import (
	"context"
	"errors"
	"testing"
)

// Begin, Commit and Rollback take a context; Rollback reports a transaction that already
// ended, as Commit does, and a deferred Rollback after Commit changes nothing.
func TestTxLifecycleTakesContexts(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	s := c.Svc(0)
	m := mustMap[string, int](t, s, "txlife")
	ctx := t.Context()

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if tx, err := s.Begin(cancelled); tx != nil || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Begin(cancelled) = %v, %v; want ErrTimeout and context.Canceled", tx, err)
	}

	// Rolled back: nothing applied; a second Rollback and a Commit say it is done.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := InTx(tx, m).Put(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	// Rollback is local: an ended context does not stop it.
	if err := tx.Rollback(cancelled); err != nil {
		t.Fatalf("first Rollback = %v", err)
	}
	if err := tx.Rollback(ctx); !errors.Is(err, ErrTxDone) {
		t.Fatalf("second Rollback = %v, want ErrTxDone", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, ErrTxDone) {
		t.Fatalf("Commit after Rollback = %v, want ErrTxDone", err)
	}
	if _, err := m.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rolled-back write visible: %v", err)
	}

	// Committed: the deferred Rollback's ErrTxDone leaves the commit in place.
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := InTx(tx, m).Put(ctx, "b", 2); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); !errors.Is(err, ErrTxDone) {
		t.Fatalf("Rollback after Commit = %v, want ErrTxDone", err)
	}
	if v, err := m.Get(ctx, "b"); err != nil || v != 2 {
		t.Fatalf("committed write: %v, %v", v, err)
	}

	c.closeSvc(s)
	if tx, err := s.Begin(ctx); tx != nil || !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin on a closed service = %v, %v; want ErrClosed", tx, err)
	}
}
