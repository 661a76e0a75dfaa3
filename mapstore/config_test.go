package mapstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestZeroConfigValidAfterDefaults pins the documented contract: zero fields mean defaults, and
// Validate checks a Config after WithDefaults (the zero value itself is not complete).
func TestZeroConfigValidAfterDefaults(t *testing.T) {
	zero := Config{}
	if err := zero.WithDefaults().Validate(); err != nil {
		t.Fatalf("zero Config after defaults: %v", err)
	}
	if !zero.WithDefaults().WriteThrough() {
		t.Fatal("zero Config is not write-through")
	}
	if err := zero.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("zero Config without defaults: want ErrInvalidConfig, got %v", err)
	}
	// Every problem once, under the sentinel once: the message is the sentinel then one line per problem.
	err := Config{WriteDelay: -time.Second, BatchSize: -1}.WithDefaults().Validate()
	if n := strings.Count(err.Error(), ErrInvalidConfig.Error()); n != 1 {
		t.Fatalf("sentinel appears %d times in %q", n, err)
	}
	if !strings.Contains(err.Error(), "WriteDelay -1s is negative") || !strings.Contains(err.Error(), "BatchSize -1 must be at least 1") {
		t.Fatalf("problems missing from %q", err)
	}
}
