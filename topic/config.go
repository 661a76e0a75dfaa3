package topic

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config.
const (
	// DefaultPlainRing is the ring of a plain topic: enough for subscribers to repair the short
	// gaps a failover or a burst leaves, not a history.
	DefaultPlainRing = 256
	// DefaultReliableRing is the ring of a reliable topic when RingCapacity is 0.
	DefaultReliableRing = 10_000
	// DefaultSubscriberBuffer is the number of messages a subscriber may be behind before it
	// drops some (and later reads them from the ring, or is told how many it missed).
	DefaultSubscriberBuffer = 1024
	// DefaultResyncInterval is how often a member with subscribers reads the ring's head.
	DefaultResyncInterval = time.Second
)

// MaxRingCapacity bounds Config.RingCapacity: the ring lives in one partition, on one member.
const MaxRingCapacity = 10_000_000

// Config configures a topic handle (New). The zero value is a valid plain topic. Every member
// that opens a topic must give it the same ring (Reliable, RingCapacity): each publish applies
// the publisher's, so the newest publisher's wins.
type Config struct {
	// Reliable keeps the last RingCapacity messages on the owner of the topic's partition, with
	// its backups: a subscriber that falls behind, was away (FromSequence), or runs on a member
	// that just joined, reads what it missed from the ring, and is told the exact count of what
	// the ring no longer holds. A plain topic keeps DefaultPlainRing messages for the same
	// repairs over short gaps only. Default false.
	Reliable bool
	// RingCapacity is the number of messages a reliable topic keeps, each costing its size on
	// the owner and on every backup. Default DefaultReliableRing (when 0); at most
	// MaxRingCapacity. A plain topic must leave it 0.
	RingCapacity int
	// SubscriberBuffer is the number of messages each subscriber holds for its reader before it
	// drops new ones. Default DefaultSubscriberBuffer (when 0). Subscribe's WithBuffer
	// overrides it for one subscription.
	SubscriberBuffer int
	// ResyncInterval is how often a member with subscribers to the topic, when no message arrived
	// for that long, reads the ring's head from the owner (one read for all its subscribers), so
	// that a message whose event a crash lost is delivered even if nothing is published after it. The shortest interval of a
	// member's subscribers applies. Default DefaultResyncInterval (when 0).
	ResyncInterval time.Duration
}

// Validate reports every problem of the configuration at once, each wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.RingCapacity < 0 || c.RingCapacity > MaxRingCapacity {
		errs = append(errs, fmt.Errorf("%w: topic: RingCapacity %d outside [0, %d]", ErrInvalidConfig, c.RingCapacity, MaxRingCapacity))
	}
	if !c.Reliable && c.RingCapacity != 0 {
		errs = append(errs, fmt.Errorf("%w: topic: RingCapacity %d set on a plain topic (set Reliable)", ErrInvalidConfig, c.RingCapacity))
	}
	if c.SubscriberBuffer < 0 {
		errs = append(errs, fmt.Errorf("%w: topic: SubscriberBuffer %d is negative", ErrInvalidConfig, c.SubscriberBuffer))
	}
	if c.ResyncInterval < 0 {
		errs = append(errs, fmt.Errorf("%w: topic: ResyncInterval %s is negative", ErrInvalidConfig, c.ResyncInterval))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with the zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.RingCapacity == 0 {
		c.RingCapacity = DefaultPlainRing
		if c.Reliable {
			c.RingCapacity = DefaultReliableRing
		}
	}
	if c.SubscriberBuffer == 0 {
		c.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	return c
}
