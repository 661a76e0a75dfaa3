package dmap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var errOutOfStock = errors.New("out of stock")

// registerReserve registers on every member of c a processor that takes n from a stock count,
// failing with errOutOfStock (wrapped) when the stock is short, or with an unregistered error
// for a negative n.
func registerReserve(t *testing.T, c *cluster, withError func(s *Service) bool) {
	t.Helper()
	for _, s := range c.Svcs {
		err := RegisterProcessor(s, "reserve", func(ctx context.Context, e *MutableEntry[string, int], n int) (int, error) {
			switch {
			case n < 0:
				return 0, fmt.Errorf("negative quantity %d", n)
			case e.Value < n:
				return 0, fmt.Errorf("%w: %s has %d, %d asked", errOutOfStock, e.Key, e.Value, n)
			}
			e.SetValue(e.Value - n)
			return e.Value - n, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if withError(s) {
			if err := s.RegisterProcessorError("out-of-stock", errOutOfStock); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A processor's registered error value reaches the caller as itself (errors.Is), from a local
// and from a remote owner, for Execute and ExecuteOnEntries; an unregistered error is
// ErrProcessor with its message.
func TestProcessorErrorValuesSurviveTheTrip(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	registerReserve(t, c, func(*Service) bool { return true })
	ctx := t.Context()
	m0 := mustMap[string, int](t, c.Svc(0), "stock")
	if err := m0.Put(ctx, "sku-1", 3); err != nil {
		t.Fatal(err)
	}
	p, _ := m0.Partition("sku-1")
	tab, _ := c.Coord.Watch()
	owner := tab.Owner(p)
	for _, s := range []*Service{c.Svcs[owner], c.Svc(0), c.Svc(1)} {
		where := "remote"
		if c.id(s) == owner {
			where = "local"
		}
		m := mustMap[string, int](t, s, "stock")
		_, err := Execute[int](ctx, m, "reserve", "sku-1", 5)
		if !errors.Is(err, errOutOfStock) || !errors.Is(err, ErrProcessor) || !strings.Contains(err.Error(), "sku-1 has 3, 5 asked") {
			t.Fatalf("%s owner: Execute = %v; want errOutOfStock and ErrProcessor with the message", where, err)
		}
		_, err = Execute[int](ctx, m, "reserve", "sku-1", -1)
		if !errors.Is(err, ErrProcessor) || errors.Is(err, errOutOfStock) || !strings.Contains(err.Error(), "negative quantity -1") {
			t.Fatalf("%s owner: unregistered error = %v; want ErrProcessor alone, with the message", where, err)
		}
	}
	var got error
	for _, err := range ExecuteOnEntries[int](ctx, m0, "reserve", 4) {
		if err != nil {
			got = err
			break
		}
	}
	if !errors.Is(got, errOutOfStock) || !errors.Is(got, ErrProcessor) {
		t.Fatalf("ExecuteOnEntries = %v; want errOutOfStock and ErrProcessor", got)
	}
	if v, err := m0.Get(ctx, "sku-1"); err != nil || v != 3 {
		t.Fatalf("stock after failed reservations: %v, %v", v, err)
	}
}

// A caller that lacks the owner's registration gets ErrProcessor saying so; names and values
// register once.
func TestProcessorErrorRegistration(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := t.Context()
	m := mustMap[string, int](t, c.Svc(0), "stock")
	p, _ := m.Partition("sku-1")
	tab, _ := c.Coord.Watch()
	owner := tab.Owner(p)
	registerReserve(t, c, func(s *Service) bool { return c.id(s) == owner })
	caller := c.Svc(0)
	if c.id(caller) == owner {
		caller = c.Svc(1)
	}
	if err := m.Put(ctx, "sku-1", 1); err != nil {
		t.Fatal(err)
	}
	_, err := Execute[int](ctx, mustMap[string, int](t, caller, "stock"), "reserve", "sku-1", 2)
	if !errors.Is(err, ErrProcessor) || errors.Is(err, errOutOfStock) || !strings.Contains(err.Error(), `"out-of-stock" is not registered on this member`) {
		t.Fatalf("Execute from a member without the registration = %v", err)
	}

	s := c.Svcs[owner]
	if err := s.RegisterProcessorError("out-of-stock", errors.New("other")); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("same name again = %v, want ErrAlreadyRegistered", err)
	}
	if err := s.RegisterProcessorError("oos", errOutOfStock); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("same value again = %v, want ErrAlreadyRegistered", err)
	}
	if err := s.RegisterProcessorError("", errOutOfStock); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty name = %v, want ErrInvalidConfig", err)
	}
	if err := s.RegisterProcessorError("nil", nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("nil value = %v, want ErrInvalidConfig", err)
	}
}
