package topic

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/listener"
)

// A topic's state is one structure map (engine.OpenStructureMap("topic", name)) whose entries
// all live in the partition of the topic's name, on its owner, with its backups:
//
//	"h"            head: the next sequence number to assign, the oldest one retained, the capacity
//	"m" + seq      one message: its payload, under its sequence number (8 bytes, big endian)
//
// Sequence numbers start at 1 and grow by one per publish, so the ring is the contiguous range
// [oldest, head). Only the two partition processors below touch these entries: publish assigns
// the next number, stores the message and trims the ring to its capacity in one atomic,
// replicated step; read returns a range of it. The entry event of a new "m" key (Added, with its
// value) is what carries a message to the subscribers of every member (hub.go).

// Names under which every member registers the topic's partition processors and predicate.
const (
	procPublish   = "gridmap.topic.publish"
	procRead      = "gridmap.topic.read"
	predMessages  = "gridmap.topic.messages"
	structureKind = "topic"
)

var headKey = []byte("h")

const msgPrefix = 'm'

// msgKey is the key of the message with sequence number seq.
func msgKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = msgPrefix
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

// seqOfKey returns the sequence number of a message key, false for any other key.
func seqOfKey(k []byte) (uint64, bool) {
	if len(k) != 9 || k[0] != msgPrefix {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), true
}

// ringHead is the head entry: [oldest, next) are the messages the ring holds, at most capacity.
type ringHead struct {
	next, oldest, capacity uint64
}

func readHead(v *engine.PartitionView) (ringHead, error) {
	b, ok := v.Get(headKey)
	if !ok {
		return ringHead{next: 1, oldest: 1, capacity: DefaultPlainRing}, nil
	}
	if len(b) != 24 {
		return ringHead{}, fmt.Errorf("topic: head entry of %d bytes", len(b))
	}
	return ringHead{next: binary.BigEndian.Uint64(b), oldest: binary.BigEndian.Uint64(b[8:]), capacity: binary.BigEndian.Uint64(b[16:])}, nil
}

func (h ringHead) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 24), h.next)
	b = binary.BigEndian.AppendUint64(b, h.oldest)
	return binary.BigEndian.AppendUint64(b, h.capacity)
}

// publish is the partition processor of Publish and PublishAll: arg is a publishArg. It numbers
// the messages consecutively and returns the first one's sequence number (8 bytes). The ring
// keeps the capacity the publisher asks for (the newest publisher's configuration wins, and a
// smaller one trims the ring at once); a capacity of 0 keeps the ring's
// (Service.PublishBytes, which knows no configuration).
func publish(_ context.Context, v *engine.PartitionView, arg []byte) ([]byte, error) {
	capacity, payloads, err := decodePublishArg(arg)
	if err != nil {
		return nil, err
	}
	h, err := readHead(v)
	if err != nil {
		return nil, err
	}
	if capacity != 0 {
		h.capacity = capacity
	}
	first := h.next
	for _, p := range payloads {
		v.Set(msgKey(h.next), p)
		h.next++
	}
	for h.next-h.oldest > h.capacity {
		v.Delete(msgKey(h.oldest)) // a message of this batch is created and deleted: no event
		h.oldest++
	}
	v.Set(headKey, h.encode())
	return binary.BigEndian.AppendUint64(nil, first), nil
}

// read is the partition processor of a subscriber's catch-up: arg is a readArg; the result is a
// readResult holding the ring's bounds and the messages from max(from, oldest) on, at most max
// of them and about maxBytes (always at least one when there is one). It writes nothing.
func read(_ context.Context, v *engine.PartitionView, arg []byte) ([]byte, error) {
	ra, err := decodeReadArg(arg)
	if err != nil {
		return nil, err
	}
	h, err := readHead(v)
	if err != nil {
		return nil, err
	}
	res := readResult{next: h.next, oldest: h.oldest, first: max(ra.from, h.oldest)}
	size := 0
	for seq := res.first; seq < h.next && uint64(len(res.msgs)) < uint64(ra.max); seq++ {
		b, ok := v.Get(msgKey(seq))
		if !ok {
			return nil, fmt.Errorf("topic: message %d missing from the ring [%d, %d)", seq, h.oldest, h.next)
		}
		if len(res.msgs) > 0 && size+len(b) > int(ra.maxBytes) {
			break
		}
		size += len(b)
		res.msgs = append(res.msgs, b)
	}
	return res.encode(), nil
}

// isMessageEvent is the owners' filter of the hubs' cluster-wide registrations: only the
// creation of a message entry is news (its removal from the ring and the head's updates are
// not), so the rest never leaves the owner.
func isMessageEvent(ev listener.Event) bool {
	_, ok := seqOfKey(ev.Key)
	return ok && ev.Kind == listener.Added
}

// register installs the processors and the predicate on a member's engine. A second topic
// Service on the same engine finds them installed: they hold no state, so that is fine.
func register(e *engine.Service) error {
	for name, p := range map[string]engine.RawPartitionProcessor{procPublish: publish, procRead: read} {
		if err := e.RegisterPartitionProcessor(name, p); err != nil && !isAlreadyRegistered(err) {
			return err
		}
	}
	err := e.RegisterPredicate(predMessages, func([]byte) (func(listener.Event) bool, error) { return isMessageEvent, nil })
	if err != nil && !isAlreadyRegistered(err) {
		return err
	}
	return nil
}
