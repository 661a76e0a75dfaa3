package mapstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestZeroConfigValid pins the module's contract: zero fields mean defaults, WithDefaults fills
// them in, and Validate checks c.WithDefaults(), so the zero value is valid, as its doc says.
func TestZeroConfigValid(t *testing.T) {
	zero := Config{}
	if err := zero.WithDefaults().Validate(); err != nil {
		t.Fatalf("zero Config after defaults: %v", err)
	}
	if !zero.WithDefaults().WriteThrough() {
		t.Fatal("zero Config is not write-through")
	}
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	// Negative values are problems either way; a zero one never is.
	if err := (Config{BatchSize: -1}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative BatchSize: want ErrInvalidConfig, got %v", err)
	}
	if err := (Config{BatchSize: 0, RetryInitial: time.Minute}).Validate(); err != nil {
		t.Fatalf("RetryInitial above the default RetryMax is valid (RetryMax follows it): %v", err)
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
