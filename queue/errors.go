package queue

import (
	"errors"

	"github.com/gridmap/gridmap/dmap"
)

// Errors returned by queues. Check them with errors.Is. Those shared with maps are dmap's own
// values, so an error from any member, local or remote, matches them.
var (
	// ErrQueueFull: the queue holds Config.Capacity items. Offer returns it at once, OfferWait
	// when its wait ended with the queue still full, and Put (with ErrTimeout) when its
	// context ended first. Nothing was added.
	ErrQueueFull = errors.New("queue: queue full")
	// ErrMemoryLimit: the queue's owner (or a backup) has used up its memory budget
	// (gridmap.Config.MemoryBudget) with entries it cannot evict; Offer, OfferWait and Put
	// waited for room as long as their context allowed, then refused the item rather than drop
	// anything. Taking items frees memory: offers succeed again once there is room. It is
	// dmap.ErrMemoryLimit, the error of every write the budget refuses.
	ErrMemoryLimit = dmap.ErrMemoryLimit
	// ErrTimeout: the operation did not complete before its context ended (it wraps the
	// context's error too), or Take's and Put's context ended while they waited.
	ErrTimeout = dmap.ErrTimeout
	// ErrInvalidConfig: a Config or Option is wrong; the message lists every problem.
	ErrInvalidConfig = dmap.ErrInvalidConfig
	// ErrClosed: the member's services have been closed.
	ErrClosed = dmap.ErrClosed
	// ErrCodec: an item could not be encoded or decoded.
	ErrCodec = dmap.ErrCodec
	// ErrPartitionLost: every replica of the queue's partition died before its data could be
	// copied elsewhere (see dmap.ErrPartitionLost).
	ErrPartitionLost = dmap.ErrPartitionLost
	// ErrCorrupt: the queue's entries on its owner do not have the queue's layout (a store
	// that holds something else under the queue's name, say). The operation changed nothing.
	ErrCorrupt = errCorrupt
	// ErrOutcomeUnknown: a Poll, Take or Drain whose call to the owner went unanswered was
	// sent again, and the owner could no longer tell whether the first call had removed items
	// (dmap.ErrOutcomeUnknown): it may have, and those items reached no caller. It is not a
	// timeout: the removal is over, and was not run twice. An Offer that returns it may have
	// added its item.
	ErrOutcomeUnknown = dmap.ErrOutcomeUnknown
)
