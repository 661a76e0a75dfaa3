package topic

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// Topic is a typed handle of one cluster-wide topic. It is safe for concurrent use. Every method
// that talks to the cluster takes a context; when it has no deadline,
// gridmap.Config.OperationTimeout applies.
type Topic[T any] struct {
	svc   *Service
	name  string
	raw   *engine.Map
	part  partition.ID
	codec dmap.Codec[T]
	cfg   Config
	// counts are the member's figures of the topic (figures.go).
	counts *counts
}

// Option configures a Topic.
type Option[T any] func(*Topic[T])

// WithCodec sets the codec of the messages. Default: dmap.DefaultCodec[T]() ([]byte and string
// as they are, anything else with msgpack). Every member must use compatible codecs for a topic.
func WithCodec[T any](c dmap.Codec[T]) Option[T] { return func(t *Topic[T]) { t.codec = c } }

// WithConfig sets the topic's configuration (see Config; the zero value is a plain topic).
func WithConfig[T any](cfg Config) Option[T] { return func(t *Topic[T]) { t.cfg = cfg } }

// New returns the topic called name on the member whose service is svc. Topics are cheap
// handles: the messages live in the partition of the topic's name, on its owner and backups,
// and every member that opens the same name publishes to and subscribes to the same topic.
// Topics of different names spread over the partitions like a map's keys.
func New[T any](svc *Service, name string, opts ...Option[T]) (*Topic[T], error) {
	raw, p, err := svc.open(name)
	if err != nil {
		return nil, err
	}
	t := &Topic[T]{svc: svc, name: name, raw: raw, part: p, codec: dmap.DefaultCodec[T](), counts: svc.counts(name)}
	for _, o := range opts {
		o(t)
	}
	if t.codec == nil {
		return nil, fmt.Errorf("%w: topic: nil codec", ErrInvalidConfig)
	}
	if err := t.cfg.Validate(); err != nil {
		return nil, err
	}
	t.cfg = t.cfg.WithDefaults()
	return t, nil
}

// Name returns the topic's name.
func (t *Topic[T]) Name() string { return t.name }

// Partition returns the partition that holds the topic: its owner orders every publish.
func (t *Topic[T]) Partition() partition.ID { return t.part }

// Publish sends msg to every subscriber of the topic on every member and returns its sequence
// number. It returns once the topic's owner has numbered and stored the message and every
// synchronous backup has acknowledged it, so a published message survives the owner's crash
// (subscribers then read it from the ring). The owner numbers the messages of all publishers
// in one order, 1, 2, 3, ..., and every subscriber receives them in that order: a publisher's
// messages arrive in the order it published them. A Publish retried after a failover is
// numbered once.
func (t *Topic[T]) Publish(ctx context.Context, msg T) (uint64, error) {
	b, err := t.codec.Encode(msg)
	if err != nil {
		return 0, err
	}
	seq, err := publishRaw(ctx, t.raw, t.part, uint64(t.cfg.RingCapacity), b)
	if err == nil {
		t.counts.published.Add(1)
	}
	return seq, err
}

// PublishAll publishes msgs in one step: they get consecutive sequence numbers (the first is
// returned), no other publisher's message comes between them, and they are acknowledged
// together, at the cost of one Publish. Together they must fit the member's maximum value size.
// A batch larger than a reliable topic's ring keeps only its newest messages in the ring.
func (t *Topic[T]) PublishAll(ctx context.Context, msgs ...T) (uint64, error) {
	if len(msgs) == 0 {
		return 0, fmt.Errorf("%w: topic: PublishAll of no message", ErrInvalidConfig)
	}
	payloads := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := t.codec.Encode(m)
		if err != nil {
			return 0, err
		}
		payloads[i] = b
	}
	seq, err := publishRaw(ctx, t.raw, t.part, uint64(t.cfg.RingCapacity), payloads...)
	if err == nil {
		t.counts.published.Add(uint64(len(payloads)))
	}
	return seq, err
}

func publishRaw(ctx context.Context, raw *engine.Map, p partition.ID, capacity uint64, payloads ...[]byte) (uint64, error) {
	res, err := raw.ExecutePartition(ctx, procPublish, p, encodePublishArg(capacity, payloads...))
	if err != nil {
		return 0, err
	}
	if len(res) != 8 {
		return 0, fmt.Errorf("%w: topic: publish answered %d bytes", ErrBadRequest, len(res))
	}
	return binary.BigEndian.Uint64(res), nil
}

// Bounds returns the sequence numbers the topic's ring holds, [oldest, next): next is the
// number the next message will get, and FromSequence(oldest) is the furthest back a subscriber
// can start without a notice of missed messages.
func (t *Topic[T]) Bounds(ctx context.Context) (oldest, next uint64, err error) {
	r, err := readRing(ctx, t.raw, t.part, readArg{})
	return r.oldest, r.next, err
}

// readRing runs the read processor on the topic's owner.
func readRing(ctx context.Context, raw *engine.Map, p partition.ID, a readArg) (readResult, error) {
	b, err := raw.ExecutePartition(ctx, procRead, p, a.encode())
	if err != nil {
		return readResult{}, err
	}
	return decodeReadResult(b)
}
