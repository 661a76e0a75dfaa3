package dmap

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/transport"
)

// countOps counts the operations member from sends to other members (msgOp calls served).
func countOps(c *cluster, from string) *atomic.Int32 {
	var n atomic.Int32
	c.Net.SetAnswered(func(f, _ string, typ transport.MsgType) bool {
		if f == from && typ == engine.MsgOp {
			n.Add(1)
		}
		return false
	})
	return &n
}

// TestBlindWritesDoNotRead: a transaction that only writes sends its commit and nothing else,
// and the commit applies both writes; a Get in a transaction is a round trip (the counter sees
// reads).
func TestBlindWritesDoNotRead(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	owner, client := c.Svc(0), c.Svc(1)
	om := mustMap[string, string](t, owner, "m")
	cm := mustMap[string, string](t, client, "m")
	keys := keysOwnedBy(t, c, om, c.id(owner), 2, true)
	if err := cm.Put(ctx, keys[0], "old"); err != nil {
		t.Fatal(err)
	}
	ops := countOps(c, string(c.id(client)))
	defer c.Net.SetAnswered(nil)

	tx, _ := client.Begin(ctx)
	if err := InTx(tx, cm).Put(ctx, keys[0], "new"); err != nil {
		t.Fatal(err)
	}
	if err := InTx(tx, cm).Put(ctx, keys[1], "dump"); err != nil {
		t.Fatal(err)
	}
	if v, err := InTx(tx, cm).Get(ctx, keys[0]); err != nil || v != "new" { // its own write
		t.Fatalf("Get in tx = %q, %v; want new", v, err)
	}
	if n := ops.Load(); n != 0 {
		t.Fatalf("%d round trips before the commit, want 0", n)
	}
	if _, err := om.Get(ctx, keys[1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("uncommitted write visible: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ops.Load(); n != 1 {
		t.Fatalf("%d round trips, want 1 (the commit)", n)
	}
	for k, want := range map[string]string{keys[0]: "new", keys[1]: "dump"} {
		if v, err := om.Get(ctx, k); err != nil || v != want {
			t.Fatalf("%s = %q, %v; want %q", k, v, err, want)
		}
	}

	// A blind Delete of an existing and of an absent entry: one round trip, both gone.
	tx, _ = client.Begin(ctx)
	InTx(tx, cm).Delete(ctx, keys[0])
	InTx(tx, cm).Delete(ctx, keys[1]+"-absent")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ops.Load(); n != 2 {
		t.Fatalf("%d round trips, want 2 (two commits)", n)
	}
	if _, err := om.Get(ctx, keys[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}

	// A read is a round trip.
	tx, _ = client.Begin(ctx)
	InTx(tx, cm).Get(ctx, keys[1])
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ops.Load(); n != 3 {
		t.Fatalf("%d round trips, want 3 (the read)", n)
	}
}

// TestBlindWriteIgnoresConcurrentChange: a blind write over an entry changed after the
// transaction began commits; a read-then-write of it conflicts and applies nothing.
func TestBlindWriteIgnoresConcurrentChange(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	a, b := mustMap[string, int](t, c.Svc(0), "acct"), mustMap[string, int](t, c.Svc(1), "acct")
	keys := keysOwnedBy(t, c, mustMap[string, string](t, c.Svc(0), "keys"), c.id(c.Svc(0)), 2, true)
	a.Put(ctx, keys[0], 1)

	blind, _ := c.Svc(1).Begin(ctx)
	InTx(blind, b).Put(ctx, keys[0], 10)
	read, _ := c.Svc(1).Begin(ctx)
	if v, err := InTx(read, b).Get(ctx, keys[0]); err != nil || v != 1 {
		t.Fatalf("Get = %d, %v", v, err)
	}
	InTx(read, b).Put(ctx, keys[0], 20)
	InTx(read, b).Put(ctx, keys[1], 20)

	if err := a.Put(ctx, keys[0], 2); err != nil { // someone else's write
		t.Fatal(err)
	}
	if err := blind.Commit(ctx); err != nil {
		t.Fatalf("blind commit = %v, want nil", err)
	}
	if err := read.Commit(ctx); !errors.Is(err, ErrConflict) {
		t.Fatalf("read-then-write commit = %v, want ErrConflict", err)
	}
	if v, _ := a.Get(ctx, keys[0]); v != 10 {
		t.Fatalf("value %d, want 10 (the blind write)", v)
	}
	if _, err := a.Get(ctx, keys[1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("conflicting transaction applied a write: %v", err)
	}
}

// TestRunTxRetriesConflict: fn's first run conflicts with a concurrent write; RunTx runs it
// again and commits.
func TestRunTxRetriesConflict(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	a, b := mustMap[string, int](t, c.Svc(0), "acct"), mustMap[string, int](t, c.Svc(1), "acct")
	a.Put(ctx, "a", 100)
	runs := 0
	err := c.Svc(1).RunTx(ctx, func(tx *Tx) error {
		runs++
		v, err := InTx(tx, b).Get(ctx, "a")
		if err != nil {
			return err
		}
		if runs == 1 {
			if err := a.Put(ctx, "a", v+1); err != nil { // a concurrent deposit
				return err
			}
		}
		return InTx(tx, b).Put(ctx, "a", v-30)
	})
	if err != nil || runs != 2 {
		t.Fatalf("RunTx = %v after %d runs; want nil after 2", err, runs)
	}
	if v, _ := a.Get(ctx, "a"); v != 71 {
		t.Fatalf("balance %d, want 71", v)
	}

	// A conflict every time ends with ctx, wrapping both. (fn reads without the short
	// deadline: a read that outlives it on a loaded machine would end RunTx with its own
	// timeout, which is not what this checks.)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = c.Svc(1).RunTx(short, func(tx *Tx) error {
		if _, err := InTx(tx, b).Get(ctx, "a"); err != nil {
			return err
		}
		return fmt.Errorf("%w: always", ErrConflict)
	})
	if !errors.Is(err, ErrConflict) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunTx with endless conflicts = %v", err)
	}
}

// TestRunTxReturnsFnError: fn's error is returned at once and nothing of the transaction is
// applied.
func TestRunTxReturnsFnError(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	m := mustMap[string, int](t, c.Svc(0), "m")
	errBoom := errors.New("boom")
	runs := 0
	err := c.Svc(0).RunTx(ctx, func(tx *Tx) error {
		runs++
		if err := InTx(tx, m).Put(ctx, "a", 1); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) || runs != 1 {
		t.Fatalf("RunTx = %v after %d runs; want boom after 1", err, runs)
	}
	if _, err := m.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed transaction applied: %v", err)
	}
}
