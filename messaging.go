package gridmap

import (
	"context"

	"github.com/gridmap/gridmap/internal/console"
)

// startMessaging wires the member's topics and queues into the console and the metrics: the
// console's publish form publishes through the topic service, and both show the member's
// topic and queue figures.
func (m *Member) startMessaging() {
	publish := console.PublisherFunc(func(ctx context.Context, topic string, msg []byte) error {
		_, err := m.topics.PublishBytes(ctx, topic, msg)
		return err
	})
	m.setMessaging(publish, messagingFigures{m})
}

// messagingFigures reports the member's topics and queues (console.Destinations), as the topic
// and queue services count them.
type messagingFigures struct{ m *Member }

// Topics returns the figures of the topics this member published to or subscribes to.
func (f messagingFigures) Topics() []console.Topic {
	var out []console.Topic
	for _, t := range f.m.topics.Figures() {
		out = append(out, console.Topic{Name: t.Name, Published: t.Published, Received: t.Received, Subscribers: t.Subscribers})
	}
	return out
}

// Queues returns the figures of the queues this member holds, as owner or backup.
func (f messagingFigures) Queues() []console.Queue {
	var out []console.Queue
	for _, q := range f.m.queues.Figures() {
		out = append(out, console.Queue{Name: q.Name, Size: q.Size, BackupSize: q.BackupSize})
	}
	return out
}
