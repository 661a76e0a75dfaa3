package gridmap_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// An entry processor runs on the owner of a key, atomically with respect to it, and its change
// is backed up like any write: counters need no lock and no read-modify-write round trips.
func Example_entryProcessor() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	// Every member registers the processor under the same name at start.
	err = dmap.RegisterProcessor(member.Maps(), "add", func(ctx context.Context, e *dmap.MutableEntry[string, int], n int) (int, error) {
		e.SetValue(e.Value + n)
		return e.Value + n, nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	crashes, _ := gridmap.GetMap[string, int](member, "crash-counts")
	for range 3 {
		dmap.Execute[int](ctx, crashes, "add", "Firefox", 1)
	}
	total, err := dmap.Execute[int](ctx, crashes, "add", "Firefox", 10)
	fmt.Println(total, err)
	// Output: 13 <nil>
}

// errOverQuota is an error value the "take" processor returns; registered on every member, it
// reaches callers as itself, whichever member ran the processor.
var errOverQuota = errors.New("over quota")

// A processor's error is checked with errors.Is once its value is registered: a caller on any
// member tells "over quota" from other failures.
func Example_processorError() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	// Every member registers the processor and its error values under the same names.
	err = errors.Join(
		dmap.RegisterProcessor(member.Maps(), "take", func(ctx context.Context, e *dmap.MutableEntry[string, int], n int) (int, error) {
			if e.Value < n {
				return e.Value, fmt.Errorf("%w: %d left, %d asked", errOverQuota, e.Value, n)
			}
			e.SetValue(e.Value - n)
			return e.Value - n, nil
		}),
		member.Maps().RegisterProcessorError("over-quota", errOverQuota))
	if err != nil {
		fmt.Println(err)
		return
	}
	quotas, _ := gridmap.GetMap[string, int](member, "quotas")
	quotas.Put(ctx, "symbolication", 5)
	_, err = dmap.Execute[int](ctx, quotas, "take", "symbolication", 8)
	fmt.Println(errors.Is(err, errOverQuota), errors.Is(err, dmap.ErrProcessor))
	fmt.Println(err)
	// Output:
	// true true
	// dmap: entry processor failed: over quota: 5 left, 8 asked
}

// A key lock keeps other writers of the key waiting, as long as their context allows; the
// holder writes through its context. TryLock does not wait.
func Example_lock() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	reports, _ := gridmap.GetMap[string, string](member, "reports")

	l, err := reports.Lock(ctx, "crash-1", time.Minute) // released after a minute at the latest
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reports.Put(l.Context(ctx), "crash-1", "processing")) // the holder may write

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = reports.Put(short, "crash-1", "someone else") // waits for the lock, then gives up
	fmt.Println(err != nil)
	_, err = reports.TryLock(ctx, "crash-1", time.Minute) // does not wait
	fmt.Println(errors.Is(err, dmap.ErrLocked))

	fmt.Println(l.Unlock(ctx))
	locked, _ := reports.IsLocked(ctx, "crash-1")
	fmt.Println(locked)
	// Output:
	// <nil>
	// true
	// true
	// <nil>
	// false
}

// reportTask is co-keyed with its report: a PartitionKey equal to the report's key puts both
// entries in one partition, so one transaction can write them atomically.
type reportTask struct{ Report, Task string }

func (k reportTask) PartitionKey() string { return k.Report }

// A transaction over co-keyed entries of several maps commits atomically on their owner.
// RunTx runs the function again when an entry it read changed before the commit; writes of
// entries it did not read need no round trip until the commit.
func Example_transaction() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	raw, _ := gridmap.GetMap[string, string](member, "raw")
	todo, _ := gridmap.GetMap[reportTask, bool](member, "process")

	err = member.Maps().RunTx(ctx, func(tx *dmap.Tx) error {
		if err := dmap.InTx(tx, raw).Put(ctx, "bp-1", `{"product":"Firefox"}`); err != nil {
			return err
		}
		return dmap.InTx(tx, todo).Put(ctx, reportTask{"bp-1", "symbolicate"}, true)
	})
	fmt.Println(err)

	_, err = todo.Get(ctx, reportTask{"bp-1", "symbolicate"})
	fmt.Println(err)
	// Output:
	// <nil>
	// <nil>
}

// A transaction by hand: Begin, Commit and Rollback take a context, and a Rollback deferred
// right after Begin ends the transaction on every path (after Commit it only reports
// dmap.ErrTxDone). RunTx does the same and retries conflicts.
func Example_transactionByHand() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	raw, _ := gridmap.GetMap[string, string](member, "raw")

	tx, err := member.Maps().Begin(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tx.Rollback(ctx)
	if err := dmap.InTx(tx, raw).Put(ctx, "bp-2", `{"product":"Thunderbird"}`); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tx.Commit(ctx))
	fmt.Println(errors.Is(tx.Rollback(ctx), dmap.ErrTxDone))
	// Output:
	// <nil>
	// true
}

// A map with a store writes behind: writes are acknowledged at once and stored in batches
// after the delay; Flush waits until everything written before it is stored.
func Example_writeBehind() {
	ctx := context.Background()
	store := memstore.New() // the embedded default is Config.DataDir (docs/restart.md)
	member, err := gridmap.Start(ctx, gridmap.Config{Maps: map[string]dmap.MapConfig{
		"reports": {Store: store, Persistence: mapstore.Config{WriteDelay: time.Second}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	reports, _ := gridmap.GetMap[string, string](member, "reports")
	reports.Put(ctx, "bp-1", "report")
	fmt.Println(store.Len())
	fmt.Println(reports.Flush(ctx), store.Len())
	// Output:
	// 0
	// <nil> 1
}
