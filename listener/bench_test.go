package listener

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPublish measures the write path's cost of an event: with 0, 1 and 8 registrations
// on the map (listeners that do nothing, default queue size), from one goroutine and from
// several (partitions write in parallel).
func BenchmarkPublish(b *testing.B) {
	for _, regs := range []int{0, 1, 8} {
		for _, parallel := range []bool{false, true} {
			name := fmt.Sprintf("registrations=%d", regs)
			if parallel {
				name += "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				d, err := New(Config{Member: "m1"})
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close(context.Background())
				for range regs {
					if _, err := d.Register("m", Discard, Options{}); err != nil {
						b.Fatal(err)
					}
				}
				// A listener of another map must not cost anything either.
				if _, err := d.Register("other", Discard, Options{}); err != nil {
					b.Fatal(err)
				}
				ev := Event{Map: "m", Kind: Updated, Key: []byte("crash-0042"), Partition: 42,
					NewValue: []byte("value"), OldValue: []byte("old")}
				b.ReportAllocs()
				if !parallel {
					for i := 0; b.Loop(); i++ {
						ev.Seq = uint64(i)
						d.Publish(ev)
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					e := ev
					for pb.Next() {
						e.Seq++
						d.Publish(e)
					}
				})
			})
		}
	}
}

// BenchmarkPublishToBlockedListener measures Publish while the only listener is stuck inside
// OnEvent: every event is dropped and counted.
func BenchmarkPublishToBlockedListener(b *testing.B) {
	d, err := New(Config{Member: "m1"})
	if err != nil {
		b.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once bool
	if _, err := d.Register("m", Func(func(Event) {
		if !once {
			once = true
			close(entered)
			<-release
		}
	}), Options{}); err != nil {
		b.Fatal(err)
	}
	ev := Event{Map: "m", Kind: Updated, Key: []byte("crash-0042"), Partition: 42}
	d.Publish(ev)
	<-entered
	for range DefaultQueueSize {
		d.Publish(ev)
	}
	b.ReportAllocs()
	for b.Loop() {
		d.Publish(ev)
	}
	b.StopTimer()
	close(release)
	d.Close(context.Background())
}
