package node

import (
	"errors"
	"testing"
)

func TestSteering(t *testing.T) {
	var s Steering
	steps := []struct {
		cmd      string
		nodes    int
		wantRate float64
	}{
		{"s2", 3, 2},
		{"l3000", 3, 2},     // 3000/min over 3 nodes is 16.7/s each: 2 stays
		{"l60", 3, 1.0 / 3}, // 60/min over 3 nodes: 1/3 each
		{"s10", 2, 0.5},     // the cap holds when the per-node rate rises
		{"l0", 2, 10},       // l0 lifts the cap
		{"stop", 2, 0},
		{" S1.5 ", 4, 1.5},
	}
	for _, st := range steps {
		var err error
		if s, err = s.Apply(st.cmd); err != nil {
			t.Fatalf("%q: %v", st.cmd, err)
		}
		if got := s.Rate(st.nodes); got != st.wantRate {
			t.Fatalf("after %q with %d nodes: rate %v, want %v", st.cmd, st.nodes, got, st.wantRate)
		}
	}
	for _, bad := range []string{"", "s", "x2", "s-1", "lots", "s1e9", "stop now"} {
		after, err := s.Apply(bad)
		if !errors.Is(err, ErrBadCommand) || after != s {
			t.Fatalf("%q: %v, setting %+v (want ErrBadCommand and no change)", bad, err, after)
		}
	}
}
