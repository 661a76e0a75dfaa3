package console

import "context"

// Publisher publishes a message to a topic on behalf of the console's publish form. The member
// wires its topic service in (Server.SetPublisher). Publish is called on an HTTP request's
// goroutine, concurrently with other calls; it may block until ctx ends (the request's
// context). msg belongs to the callee once Publish is called.
type Publisher interface {
	Publish(ctx context.Context, topic string, msg []byte) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, topic string, msg []byte) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, topic string, msg []byte) error {
	return f(ctx, topic, msg)
}

// Destinations reports a member's topics and queues for the console and the metrics. It is
// called at every console refresh and scrape, concurrently; it must be cheap and must not block
// (read counters, do not ask other members). The returned slices belong to the caller.
type Destinations interface {
	Topics() []Topic
	Queues() []Queue
}

// Topic is one topic as a member sees it.
type Topic struct {
	Name string `json:"name"`
	// Published counts the messages published through this member; Received those delivered
	// to its subscribers; Subscribers is the number of its local subscribers.
	Published   uint64 `json:"published"`
	Received    uint64 `json:"received"`
	Subscribers int    `json:"subscribers"`
}

// Queue is one queue as a member sees it: the items of the queue's partition(s) it owns.
type Queue struct {
	Name string `json:"name"`
	// Size is the number of items this member holds as the queue's owner; BackupSize the
	// items it holds as a backup.
	Size       int `json:"size"`
	BackupSize int `json:"backupSize"`
}
