package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	err := Config{RingCapacity: -1, SubscriberBuffer: -1, ResyncInterval: -1}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"RingCapacity -1", "plain topic", "SubscriberBuffer", "ResyncInterval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %s", err, want)
		}
	}
	if err := (Config{Reliable: true, RingCapacity: MaxRingCapacity + 1}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a ring beyond MaxRingCapacity: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	plain, reliable := Config{}.WithDefaults(), Config{Reliable: true}.WithDefaults()
	if plain.RingCapacity != DefaultPlainRing || reliable.RingCapacity != DefaultReliableRing {
		t.Errorf("rings %d and %d", plain.RingCapacity, reliable.RingCapacity)
	}
	if plain.SubscriberBuffer != DefaultSubscriberBuffer || plain.ResyncInterval != DefaultResyncInterval {
		t.Errorf("defaults %+v", plain)
	}
	if got := (Config{Reliable: true, RingCapacity: 7}).WithDefaults().RingCapacity; got != 7 {
		t.Errorf("a set ring became %d", got)
	}
}
