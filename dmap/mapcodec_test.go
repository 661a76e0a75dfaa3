package dmap

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/listener"
)

// reverseCodec stores a string key reversed: decoded with DefaultCodec, "abc" reads as "cba".
type reverseCodec struct{}

func (reverseCodec) Encode(s string) ([]byte, error) {
	b := []byte(s)
	slices.Reverse(b)
	return b, nil
}

func (reverseCodec) Decode(b []byte) (string, error) {
	r := slices.Clone(b)
	slices.Reverse(r)
	return string(r), nil
}

// textIntCodec stores an int as "#" and its decimal digits: decoded with DefaultCodec (msgpack),
// every value reads as 35, the positive fixint '#'.
type textIntCodec struct{}

func (textIntCodec) Encode(v int) ([]byte, error) { return []byte("#" + strconv.Itoa(v)), nil }

func (textIntCodec) Decode(b []byte) (int, error) {
	s, ok := strings.CutPrefix(string(b), "#")
	if !ok {
		return 0, fmt.Errorf("%w: %q is not a text int", ErrCodec, b)
	}
	return strconv.Atoi(s)
}

func openCodecMap(t *testing.T, s *Service) *Map[string, int] {
	t.Helper()
	m, err := New(s, "coded", WithKeyCodec[int](reverseCodec{}), WithValueCodec[string](textIntCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMapProcessorUsesMapCodecs: a processor registered with RegisterMapProcessor decodes keys
// and values with the map's codecs on whichever member owns the key, and the value it sets is
// encoded with the map's value codec (the map reads it back).
func TestMapProcessorUsesMapCodecs(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	maps := make([]*Map[string, int], 0, len(c.Active))
	for _, id := range c.Active {
		m := openCodecMap(t, c.Svcs[id])
		maps = append(maps, m)
		err := RegisterMapProcessor(m, "add", func(ctx context.Context, e *MutableEntry[string, int], by int) (string, error) {
			seen := fmt.Sprintf("%s=%d/%v", e.Key, e.Value, e.Exists)
			e.SetValue(e.Value + by)
			return seen, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{"abc", "hello", "k1", "k2", "k3", "k4", "k5", "k6"}
	for i, k := range keys {
		if err := maps[i%len(maps)].Put(ctx, k, 40+i); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys {
		m := maps[(i+1)%len(maps)] // callers on every member, owners spread over the members
		got, err := Execute[string](ctx, m, "add", k, 2)
		if want := fmt.Sprintf("%s=%d/true", k, 40+i); err != nil || got != want {
			t.Fatalf("Execute(add, %q) saw %q, %v; want %q", k, got, err, want)
		}
		if v, err := m.Get(ctx, k); err != nil || v != 42+i {
			t.Fatalf("Get(%q) after add = %d, %v; want %d", k, v, err, 42+i)
		}
	}
	if got, err := Execute[string](ctx, maps[0], "add", "fresh", 7); err != nil || got != "fresh=0/false" {
		t.Fatalf("Execute(add, fresh) saw %q, %v", got, err)
	}
	if v, err := maps[1].Get(ctx, "fresh"); err != nil || v != 7 {
		t.Fatalf("Get(fresh) = %d, %v; want 7", v, err)
	}
	n := 0
	for r, err := range ExecuteOnEntries[string](ctx, maps[2], "add", 0) {
		if err != nil {
			t.Fatal(err)
		}
		want, _ := maps[2].Get(ctx, r.Key)
		if r.Value != fmt.Sprintf("%s=%d/true", r.Key, want) {
			t.Fatalf("ExecuteOnEntries saw %q for key %q (value %d)", r.Value, r.Key, want)
		}
		n++
	}
	if n != len(keys)+1 {
		t.Fatalf("ExecuteOnEntries ran on %d entries, want %d", n, len(keys)+1)
	}

	// The same processor registered with the default codecs sees what the bug showed: the key
	// reversed and every value as 35.
	if err := RegisterProcessor(c.Svc(0), "peek", func(ctx context.Context, e *MutableEntry[string, int], _ int) (string, error) {
		return fmt.Sprintf("%s=%d", e.Key, e.Value), nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.Active[1:] {
		if err := RegisterProcessor(c.Svcs[id], "peek", func(ctx context.Context, e *MutableEntry[string, int], _ int) (string, error) {
			return fmt.Sprintf("%s=%d", e.Key, e.Value), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := Execute[string](ctx, maps[0], "peek", "abc", 0); err != nil || got != "cba=35" {
		t.Fatalf("default-codec processor saw %q, %v; want the raw reading cba=35", got, err)
	}
}

// TestMapPredicateUsesMapCodecs: a predicate registered with RegisterMapPredicate filters a
// cluster-wide listener's events on the keys and values as the map's codecs decode them.
func TestMapPredicateUsesMapCodecs(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	maps := make([]*Map[string, int], 0, len(c.Active))
	for _, id := range c.Active {
		m := openCodecMap(t, c.Svcs[id])
		maps = append(maps, m)
		// Both conditions fail on every event when decoded with the default codecs: the keys
		// read reversed and the values as 35.
		err := RegisterMapPredicate(m, "bigWithPrefix", func(e EntryEvent[string, int], prefix string) bool {
			return strings.HasPrefix(e.Key, prefix) && e.NewValue >= 100
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var r recorder[string, int]
	h, err := maps[0].AddEntryListener(ctx, r.on, ListenerOptions[string]{IncludeValues: true, Predicate: "bigWithPrefix", PredicateArg: "ab"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	puts := []struct {
		key string
		val int
	}{
		{"ab1", 7},    // rejected: small (and delivered before the next one if accepted)
		{"ab1", 200},  // accepted
		{"xyab", 500}, // rejected: prefix
		{"abz", 300},  // accepted
		{"ba", 400},   // rejected: prefix ("ab" reversed, as the default codec would read it)
	}
	for i, p := range puts {
		if err := maps[i%len(maps)].Put(ctx, p.key, p.val); err != nil {
			t.Fatal(err)
		}
	}
	enginetest.Eventually(t, 20*time.Second, "the two matching events", func() bool { return r.Count() >= 2 })
	evs, missed := r.Snapshot()
	slices.SortFunc(evs, func(a, b EntryEvent[string, int]) int { return strings.Compare(a.Key, b.Key) })
	if len(evs) != 2 || missed != 0 ||
		evs[0].Key != "ab1" || evs[0].Kind != listener.Updated || evs[0].OldValue != 7 || evs[0].NewValue != 200 ||
		evs[1].Key != "abz" || evs[1].Kind != listener.Added || evs[1].NewValue != 300 {
		t.Fatalf("events %+v (missed %d); want ab1 7->200 and abz added 300", evs, missed)
	}
}
