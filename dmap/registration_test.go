package dmap

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
)

// Every listener registration has one shape, (ctx, fn, ...) (*ListenerHandle, error), and
// refuses the same things the same way: a nil listener, a context that has already ended,
// a closed service.
func TestListenerRegistrationsShareOneShape(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	s := c.Svc(0)
	m := mustMap[string, int](t, s, "shape")
	regs := map[string]func(ctx context.Context, nilFn bool) (*ListenerHandle, error){
		"AddLocalEntryListener": func(ctx context.Context, nilFn bool) (*ListenerHandle, error) {
			fn := func(EntryEvent[string, int]) {}
			if nilFn {
				fn = nil
			}
			return m.AddLocalEntryListener(ctx, fn, ListenerOptions[string]{})
		},
		"AddEntryListener": func(ctx context.Context, nilFn bool) (*ListenerHandle, error) {
			fn := func(EntryEvent[string, int]) {}
			if nilFn {
				fn = nil
			}
			return m.AddEntryListener(ctx, fn, ListenerOptions[string]{})
		},
		"AddPartitionListener": func(ctx context.Context, nilFn bool) (*ListenerHandle, error) {
			fn := func(PartitionEvent) {}
			if nilFn {
				fn = nil
			}
			return s.AddPartitionListener(ctx, fn)
		},
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for name, reg := range regs {
		if h, err := reg(t.Context(), true); h != nil || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s(nil fn) = %v, %v; want ErrInvalidConfig", name, h, err)
		}
		if h, err := reg(cancelled, false); h != nil || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
			t.Errorf("%s(cancelled ctx) = %v, %v; want ErrTimeout and context.Canceled", name, h, err)
		}
		h, err := reg(t.Context(), false)
		if err != nil || h == nil {
			t.Fatalf("%s = %v, %v", name, h, err)
		}
		h.Remove()
		h.Remove() // twice is allowed
	}
	c.closeSvc(s)
	for name, reg := range regs {
		if h, err := reg(t.Context(), false); h != nil || !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed service = %v, %v; want ErrClosed", name, h, err)
		}
	}
}

// A partition listener's handle counts what it delivered, and Remove stops the calls.
func TestPartitionListenerHandle(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	s := c.Svc(0)
	var mu sync.Mutex
	var kept, removed int
	hKept, err := s.AddPartitionListener(t.Context(), func(PartitionEvent) { mu.Lock(); kept++; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	hRemoved, err := s.AddPartitionListener(t.Context(), func(PartitionEvent) { mu.Lock(); removed++; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	hRemoved.Remove()

	// A joiner takes partitions from both members: member 0 sees migrations.
	c.Start()
	c.Replan(nil)
	c.WaitStable()
	enginetest.Eventually(t, 10*time.Second, "member 0's partition events", func() bool {
		return hKept.Stats().Delivered > 0
	})
	mu.Lock()
	k, r := kept, removed
	mu.Unlock()
	st := hKept.Stats()
	if st.Delivered < uint64(k) || k == 0 || st.Missed != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v after %d calls", st, k)
	}
	if r != 0 || hRemoved.Stats().Delivered != 0 {
		t.Fatalf("a removed listener was called %d times (stats %+v)", r, hRemoved.Stats())
	}
}
