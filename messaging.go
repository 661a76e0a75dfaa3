package gridmap

import (
	"context"

	"github.com/gridmap/gridmap/internal/console"
	"github.com/gridmap/gridmap/internal/engine"
)

// Kinds of the engine's structure maps the console shows as queues (queue package).
const queueStructureKind = "queue"

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

// messagingFigures reports the member's topics and queues (console.Destinations).
type messagingFigures struct{ m *Member }

// Topics returns the figures of the topics this member published to or subscribes to.
func (f messagingFigures) Topics() []console.Topic {
	var out []console.Topic
	for _, t := range f.m.topics.Figures() {
		out = append(out, console.Topic{Name: t.Name, Published: t.Published, Received: t.Received, Subscribers: t.Subscribers})
	}
	return out
}

// Queues returns the queues this member holds items of, as owner or backup: a queue's map holds
// one head entry besides its items.
func (f messagingFigures) Queues() []console.Queue {
	var out []console.Queue
	for _, ms := range f.m.engine.Stats().Maps {
		kind, name, ok := engine.SplitStructureMapName(ms.Name)
		if !ok || kind != queueStructureKind || ms.OwnedEntries+ms.BackupEntries == 0 {
			continue
		}
		out = append(out, console.Queue{Name: name, Size: max(ms.OwnedEntries-1, 0), BackupSize: max(ms.BackupEntries-1, 0)})
	}
	return out
}
