package topic

import (
	"slices"

	"github.com/gridmap/gridmap/partition"
)

// Why a hub holds messages back.
//
// The engine publishes an entry event when the owner applies a write, before the synchronous
// backups have acknowledged it; writes of one partition are serialised from decision to
// replication. So the event of message N may reach a member before N is replicated, and if the
// owner dies then, N is lost (its Publish was not acknowledged) and the new owner numbers
// another message N. A subscriber that had delivered the first N would take the second for a
// duplicate and skip an acknowledged message. The hub therefore hands a message to its
// subscribers only once it is settled:
//
//   - by the event of a later message from the same owner (that write was decided after N's
//     replication ended), or
//   - by a read of the ring (a partition processor, which also runs after every earlier write
//     of the partition settled), whose content replaces what the event carried.
//
// A held message whose owner is not the later event's is dropped: the subscribers see the gap
// and read that number from the ring. pending is the pure bookkeeping of it; the hub drives it.
type pending struct {
	held []heldMsg // by sequence number
}

type heldMsg struct {
	item
	from partition.MemberID // the owner that published the event
}

// add records the event of message seq from owner from, and returns the held messages it
// settles, in order. A held message of the same number (the event of a dead owner's
// unreplicated message, or a repeat) is replaced.
func (p *pending) add(seq uint64, payload []byte, from partition.MemberID) []item {
	var out []item
	keep := p.held[:0]
	for _, h := range p.held {
		switch {
		case h.seq < seq && h.from == from:
			out = append(out, h.item)
		case h.seq < seq, h.seq == seq:
			// Another owner's, or replaced: dropped (the subscribers repair the gap from the ring).
		default:
			keep = append(keep, h)
		}
	}
	clear(p.held[len(keep):])
	p.held = append(keep, heldMsg{item: item{seq: seq, payload: payload}, from: from})
	slices.SortFunc(p.held, func(a, b heldMsg) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return out
}

// span returns the numbers held, first to last, for a read of the ring to settle them.
func (p *pending) span() (first, last uint64, ok bool) {
	if len(p.held) == 0 {
		return 0, 0, false
	}
	return p.held[0].seq, p.held[len(p.held)-1].seq, true
}

// settleRead takes the answer of a read of the ring that began after every message held up to
// last had arrived: the ring's messages settle the held numbers it holds (with the ring's
// content), and the held numbers up to last that it does not hold are dropped (trimmed, or
// lost with their owner before they were replicated). It returns what to hand on, in order.
func (p *pending) settleRead(r readResult, last uint64) []item {
	var out []item
	keep := p.held[:0]
	for _, h := range p.held {
		switch {
		case h.seq > last:
			keep = append(keep, h) // arrived during the read
		case h.seq >= r.first && h.seq-r.first < uint64(len(r.msgs)):
			out = append(out, item{seq: h.seq, payload: r.msgs[h.seq-r.first]})
		case h.seq >= r.next:
			// Not in the ring although its write ended before the read: lost with its owner.
		default:
			// Before the ring's oldest, or beyond what one read returns: the subscribers repair
			// or count it.
		}
	}
	clear(p.held[len(keep):])
	p.held = keep
	return out
}

// drop forgets every held message (an overflow: the subscribers resync from the ring).
func (p *pending) drop() {
	clear(p.held)
	p.held = p.held[:0]
}
