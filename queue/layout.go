package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A queue is the entries of its structure map (engine.StructureMapName("queue", name)), all in
// the partition of the queue's name:
//
//	metaKey            head and tail: 16 bytes, two big-endian uint64 sequence numbers
//	itemKey(seq)       one entry per item, head <= seq < tail, value the item's encoding
//
// The item at the head is the oldest. This file is the layout and the processors' logic over
// it; it does no I/O, so tests drive it with a map in place of a partition.

// metaKey is the key of the head and tail entry.
var metaKey = []byte("h")

// itemPrefix starts every item key.
const itemPrefix = 'i'

// itemKey is the key of the item with sequence number seq: the prefix and seq big-endian, so
// a store's keys sort in queue order.
func itemKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{itemPrefix}, seq)
}

// isItemKey reports whether key is an item's (not the head and tail entry).
func isItemKey(key []byte) bool { return len(key) == 9 && key[0] == itemPrefix }

// itemCount is the number of items of a queue whose map holds entries entries in one partition
// copy: all but the head and tail entry, which the first offer writes and nothing removes.
func itemCount(entries int) int { return max(entries-1, 0) }

// errCorrupt: a queue's entries do not have the layout above.
var errCorrupt = errors.New("queue: corrupt queue entry")

// view is what the processors read and write: a queue's entries in its partition
// (engine.PartitionView on the owner).
type view interface {
	Get(key []byte) ([]byte, bool)
	Set(key, value []byte)
	Delete(key []byte)
}

// meta is a queue's head and tail.
type meta struct{ head, tail uint64 }

func (m meta) size() uint64 { return m.tail - m.head }

func readMeta(v view) (meta, error) {
	b, ok := v.Get(metaKey)
	if !ok {
		return meta{}, nil
	}
	if len(b) != 16 {
		return meta{}, fmt.Errorf("%w: head and tail entry of %d bytes", errCorrupt, len(b))
	}
	m := meta{head: binary.BigEndian.Uint64(b), tail: binary.BigEndian.Uint64(b[8:])}
	if m.head > m.tail {
		return meta{}, fmt.Errorf("%w: head %d beyond tail %d", errCorrupt, m.head, m.tail)
	}
	return m, nil
}

func writeMeta(v view, m meta) {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), m.head)
	v.Set(metaKey, binary.BigEndian.AppendUint64(b, m.tail))
}

// Results of offer.
const (
	offerFull     byte = 0
	offerAccepted byte = 1
	// offerNoMemory: the owner's memory budget is used up. Owners of this version no longer
	// answer it (the engine refuses the offer with dmap.ErrMemoryLimit before it is applied);
	// callers still understand it from older owners.
	offerNoMemory byte = 2
)

// unpolled is unpoll's result.
const unpolled byte = 1

// offer appends items (each an encoded item) if they all fit within capacity (0: unbounded)
// and returns offerAccepted, or changes nothing and returns offerFull.
func offer(v view, capacity uint64, items [][]byte) ([]byte, error) {
	m, err := readMeta(v)
	if err != nil {
		return nil, err
	}
	if capacity > 0 && m.size()+uint64(len(items)) > capacity {
		return []byte{offerFull}, nil
	}
	for _, it := range items {
		v.Set(itemKey(m.tail), it)
		m.tail++
	}
	writeMeta(v, m)
	return []byte{offerAccepted}, nil
}

// poll removes up to maxItems items from the head, stopping before the item that would take
// the result beyond maxBytes (but taking at least one), and returns them (encodeItems). An
// item missing below the tail (a store that lost it) is skipped.
func poll(v view, maxItems, maxBytes int) ([]byte, error) {
	m, err := readMeta(v)
	if err != nil {
		return nil, err
	}
	var items [][]byte
	start, size := m.head, 0
	for m.head < m.tail && len(items) < maxItems {
		k := itemKey(m.head)
		it, ok := v.Get(k)
		if ok && len(items) > 0 && size+len(it) > maxBytes {
			break
		}
		m.head++
		if !ok {
			continue
		}
		v.Delete(k)
		items = append(items, it)
		size += len(it)
	}
	if m.head != start {
		writeMeta(v, m)
	}
	return encodeItems(items), nil
}

// unpoll puts items (encoded items, oldest first) back before the head, so that the first is
// the head again: the items of a poll whose taker gave up before it had them. Their slots are
// free: a poll that removed n items left the head at n or beyond, and nothing writes below the
// head. Capacity does not bound it (the items were in the queue; the queue may exceed its
// capacity by them until they are taken). It returns unpolled: a result, so that the owner
// remembers it and a retry of the same operation does not put the items back twice.
func unpoll(v view, items [][]byte) ([]byte, error) {
	m, err := readMeta(v)
	if err != nil {
		return nil, err
	}
	if uint64(len(items)) > m.head {
		return nil, fmt.Errorf("%w: %d items to put back before head %d", errCorrupt, len(items), m.head)
	}
	m.head -= uint64(len(items))
	for i, it := range items {
		v.Set(itemKey(m.head+uint64(i)), it)
	}
	if len(items) > 0 {
		writeMeta(v, m)
	}
	return []byte{unpolled}, nil
}

// peek returns the head item without removing it (encodeItems, zero or one item).
func peek(v view) ([]byte, error) {
	m, err := readMeta(v)
	if err != nil {
		return nil, err
	}
	for s := m.head; s < m.tail; s++ {
		if it, ok := v.Get(itemKey(s)); ok {
			return encodeItems([][]byte{it}), nil
		}
	}
	return encodeItems(nil), nil
}

// size returns the number of items, as a uvarint.
func size(v view) ([]byte, error) {
	m, err := readMeta(v)
	if err != nil {
		return nil, err
	}
	return binary.AppendUvarint(nil, m.size()), nil
}

// clearChunk removes up to max items from the head, none at or beyond upTo (0: the current
// tail), and returns the head after it and the bound it used (two uvarints): the caller repeats
// until the head reaches the bound, so that a Clear of a large queue is many small batches and
// items offered after it started stay.
func clearChunk(v view, upTo uint64, max int) ([]byte, error) {
	m, err := readMeta(v)
	if err != nil {
		return nil, err
	}
	if upTo == 0 || upTo > m.tail {
		upTo = m.tail
	}
	start := m.head
	for n := 0; m.head < upTo && n < max; n++ {
		v.Delete(itemKey(m.head))
		m.head++
	}
	if m.head != start {
		writeMeta(v, m)
	}
	return binary.AppendUvarint(binary.AppendUvarint(nil, m.head), upTo), nil
}

// encodeItems encodes a list of items: a uvarint count, then each item as a uvarint length and
// its bytes.
func encodeItems(items [][]byte) []byte {
	n := binary.MaxVarintLen64
	for _, it := range items {
		n += binary.MaxVarintLen64 + len(it)
	}
	b := binary.AppendUvarint(make([]byte, 0, n), uint64(len(items)))
	for _, it := range items {
		b = binary.AppendUvarint(b, uint64(len(it)))
		b = append(b, it...)
	}
	return b
}

// decodeItems decodes encodeItems's output. The items share b's memory.
func decodeItems(b []byte) ([][]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: item list header", errCorrupt)
	}
	b = b[k:]
	items := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: item list entry", errCorrupt)
		}
		items = append(items, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the item list", errCorrupt, len(b))
	}
	return items, nil
}

// uvarints decodes exactly n uvarints.
func uvarints(b []byte, n int) ([]uint64, error) {
	out := make([]uint64, n)
	for i := range out {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: number %d of %d", errCorrupt, i, n)
		}
		out[i], b = v, b[k:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after %d numbers", errCorrupt, len(b), n)
	}
	return out, nil
}

// uvarintArgs encodes numbers as uvarints (what uvarints decodes): a processor's argument.
func uvarintArgs(nums ...uint64) []byte {
	var b []byte
	for _, n := range nums {
		b = binary.AppendUvarint(b, n)
	}
	return b
}
