package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gridmap/gridmap/topic"
)

// -op publish: the workers publish to one topic through the members (round-robin, as for puts);
// one subscriber on every member reads it. A message carries the time its Publish started, so
// each subscriber measures the latency from publish to delivery; the ops measured are the
// publishes themselves (until the owner and its backups acknowledged).

const (
	benchTopicName   = "bench-topic"
	publishStampSize = 8 // bytes of the publish time at the start of each message
	// drainTimeout bounds the wait for the subscribers to receive the last messages.
	drainTimeout = 30 * time.Second
	// benchSubscriberBuffer lets a subscriber absorb bursts: the figure is the delivery's, not
	// the repair's (a drop would be repaired from the ring or counted in delivery_missed).
	benchSubscriberBuffer = 1 << 16
)

// publisher adapts a topic to the workload's store: Put publishes value stamped with the time.
type publisher struct{ t *topic.Topic[[]byte] }

func (p publisher) Put(ctx context.Context, _ string, value []byte) error {
	msg := slices.Clone(value)
	binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
	_, err := p.t.Publish(ctx, msg)
	return err
}

func (p publisher) Get(context.Context, string) ([]byte, error) {
	return nil, errors.New("gridmap-bench: -op publish does not read")
}

// delivery is what one subscriber measured.
type delivery struct {
	samples []time.Duration
	missed  uint64
}

// runPublish runs -op publish on the started members ms.
func runPublish(ctx context.Context, cfg config, ms []member, startup time.Duration) (result, error) {
	tcfg := topic.WithConfig[[]byte](topic.Config{SubscriberBuffer: benchSubscriberBuffer})
	slots := make([]slot, cfg.Concurrency)
	var subs []*topic.Subscription[[]byte]
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	var pub *topic.Topic[[]byte]
	for i, m := range ms {
		gm, ok := m.(*gridmapMember)
		if !ok {
			return result{}, fmt.Errorf("gridmap-bench: -op publish needs gridmap members")
		}
		t, err := topic.New(gm.m.Topics(), benchTopicName, tcfg)
		if err != nil {
			return result{}, err
		}
		s, err := t.Subscribe(ctx)
		if err != nil {
			return result{}, fmt.Errorf("gridmap-bench: subscribing on member %d: %w", i, err)
		}
		subs = append(subs, s)
		pub = t
		for w := i; w < cfg.Concurrency; w += len(ms) {
			slots[w] = slot{ID: w, Store: publisher{t: t}}
		}
	}

	begin := time.Now()
	wl := newWorkload(cfg, begin, benchValue(cfg.ValueSize))
	results := make([]delivery, len(subs))
	stopReading := make(chan struct{})
	var readers sync.WaitGroup
	for i, s := range subs {
		readers.Go(func() { results[i] = readDeliveries(s, wl.Start, wl.Deadline, stopReading) })
	}
	gc, cpu := startGCWindow(), startCPUWindow()
	t := wl.run(ctx, slots)
	if err := ctx.Err(); err != nil {
		close(stopReading)
		readers.Wait()
		return result{}, fmt.Errorf("gridmap-bench: interrupted: %w", err)
	}
	// Wait for every subscriber to reach the topic's head, then stop them.
	dctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	_, head, err := pub.Bounds(dctx)
	for _, s := range subs {
		for err == nil && s.Next() < head {
			select {
			case <-dctx.Done():
				err = fmt.Errorf("gridmap-bench: a subscriber is at %d of %d after %s", s.Next(), head, drainTimeout)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	close(stopReading)
	readers.Wait()
	if err != nil {
		return result{}, err
	}

	r := newResult(cfg, t, startup, 0)
	r.GCCycles, r.GCPauseMaxUs = gc.end()
	r.CPUBusyPct, r.CPUStealPct, _ = cpu.end()
	var all []time.Duration
	for _, d := range results {
		all = append(all, d.samples...)
		r.DeliveryMissed += d.missed
	}
	slices.Sort(all)
	r.Deliveries = int64(len(all))
	r.DeliveriesPerSec = round1(float64(len(all)) / cfg.Duration.Seconds())
	r.DeliveryP50us, r.DeliveryP99us, r.DeliveryP999us = percentileUs(all, 0.5), percentileUs(all, 0.99), percentileUs(all, 0.999)
	return r, nil
}

// readDeliveries reads s until stop closes, measuring the messages published in [from, to).
func readDeliveries(s *topic.Subscription[[]byte], from, to time.Time, stop <-chan struct{}) delivery {
	d := delivery{samples: make([]time.Duration, 0, 1<<16)}
	lo, hi := from.UnixNano(), to.UnixNano()
	for {
		select {
		case m, ok := <-s.Messages():
			if !ok {
				return d
			}
			if m.Missed > 0 {
				d.missed += m.Missed
				continue
			}
			if len(m.Value) < publishStampSize {
				continue
			}
			now := time.Now().UnixNano()
			if at := int64(binary.BigEndian.Uint64(m.Value)); at >= lo && at < hi {
				d.samples = append(d.samples, time.Duration(now-at))
			}
		case <-stop:
			return d
		}
	}
}
