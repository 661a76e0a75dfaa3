package listener_test

import (
	"context"
	"fmt"

	"github.com/gridmap/gridmap/listener"
)

// A member's dispatcher delivers the events its map's write path publishes to the listeners
// registered for that map, each on its own goroutine.
func Example() {
	d, err := listener.New(listener.Config{Member: "member-1"})
	if err != nil {
		panic(err)
	}
	got := make(chan listener.Event)
	reg, err := d.Register("reports", listener.Func(func(e listener.Event) { got <- e }),
		listener.Options{IncludeValues: true})
	if err != nil {
		panic(err)
	}

	// What dmap does after applying a write on the partition's owner.
	d.Publish(listener.Event{Map: "reports", Kind: listener.Added, Key: []byte("crash-1"),
		Partition: 7, Seq: 41, NewValue: []byte(`{"signature":"OOM"}`)})
	d.Publish(listener.Event{Map: "reports", Kind: listener.Removed, Key: []byte("crash-1"),
		Partition: 7, Seq: 42, OldValue: []byte(`{"signature":"OOM"}`)})

	for range 2 {
		e := <-got
		fmt.Println(e.Kind, string(e.Key), e.Member, e.Seq, string(e.NewValue)+string(e.OldValue))
	}
	reg.Remove()
	if err := d.Close(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// Added crash-1 member-1 41 {"signature":"OOM"}
	// Removed crash-1 member-1 42 {"signature":"OOM"}
}

// A listener that falls behind is told exactly how many events it missed, where it missed
// them; the writes never wait for it.
func Example_overflow() {
	d, _ := listener.New(listener.Config{Member: "member-1"})
	defer d.Close(context.Background())

	entered, release := make(chan struct{}), make(chan struct{})
	got := make(chan listener.Event, 16)
	first := true
	d.Register("reports", listener.Func(func(e listener.Event) {
		if first { // the first call blocks, as a slow listener would
			first = false
			close(entered)
			<-release
		}
		got <- e
	}), listener.Options{QueueSize: 2})

	d.Publish(listener.Event{Map: "reports", Kind: listener.Added, Key: []byte("k"), Seq: 1})
	<-entered
	for seq := uint64(2); seq <= 1000; seq++ { // never blocks: 2 and 3 are queued, the rest dropped
		d.Publish(listener.Event{Map: "reports", Kind: listener.Updated, Key: []byte("k"), Seq: seq})
	}
	close(release)
	for range 4 {
		e := <-got
		if e.Kind == listener.Overflow {
			fmt.Println("missed", e.Missed)
		} else {
			fmt.Println(e.Kind, e.Seq)
		}
	}
	// Output:
	// Added 1
	// Updated 2
	// Updated 3
	// missed 997
}

// Key and Predicate run on the write path before the event is queued: rejected events cost
// the listener no queue space.
func ExampleOptions() {
	d, _ := listener.New(listener.Config{Member: "member-1"})
	defer d.Close(context.Background())

	got := make(chan listener.Event, 8)
	d.Register("process", listener.Func(func(e listener.Event) { got <- e }), listener.Options{
		Predicate: func(e listener.Event) bool { return e.Kind == listener.Added },
	})
	d.Publish(listener.Event{Map: "process", Kind: listener.Added, Key: []byte("a"), Seq: 1})
	d.Publish(listener.Event{Map: "process", Kind: listener.Removed, Key: []byte("a"), Seq: 2})
	d.Publish(listener.Event{Map: "process", Kind: listener.Added, Key: []byte("b"), Seq: 3})
	fmt.Println(<-got)
	fmt.Println(<-got)
	// Output:
	// process Added key="a" partition=0 seq=1 old=0B new=0B
	// process Added key="b" partition=0 seq=3 old=0B new=0B
}

// Events that arrive from elsewhere (a cluster-wide listener's, sent by the owners of the
// entries) go through an attached registration: the same bounded queue, with the events the
// sender dropped reported as missed where they were dropped.
func ExampleDispatcher_Attach() {
	d, _ := listener.New(listener.Config{Member: "member-1"})
	defer d.Close(context.Background())

	got := make(chan listener.Event, 4)
	reg, err := d.Attach("reports", listener.Func(func(e listener.Event) { got <- e }), listener.Options{})
	if err != nil {
		panic(err)
	}
	// As received from an owner: an event, then one after 3 the owner's outbox dropped.
	reg.Offer(listener.Event{Map: "reports", Kind: listener.Added, Key: []byte("crash-1"), Member: "member-2", Seq: 1}, 0)
	reg.Offer(listener.Event{Map: "reports", Kind: listener.Added, Key: []byte("crash-5"), Member: "member-2", Seq: 5}, 3)
	for range 3 {
		e := <-got
		if e.Kind == listener.Overflow {
			fmt.Println("missed", e.Missed)
			continue
		}
		fmt.Println(e.Kind, string(e.Key), e.Member)
	}
	fmt.Println("stats: missed", reg.Stats().Missed)
	// Output:
	// Added crash-1 member-2
	// missed 3
	// Added crash-5 member-2
	// stats: missed 3
}
