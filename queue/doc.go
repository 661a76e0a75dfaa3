// Package queue is gridmap's distributed FIFO queue: Queue[T], a typed view of a queue shared
// by the whole cluster, on the same partitions, backups and stores as the maps (package dmap).
//
// # A queue
//
// Open one on a running member, by name:
//
//	q, err := queue.New[Job](member.Queues(), "jobs")
//
// Offer adds an item at the tail (ErrQueueFull at once when the queue is at its capacity),
// OfferWait and Put wait for room; Poll removes the head item (false when empty), Take waits for
// one as long as its context allows; Peek, Size, Drain(max) and Clear do what they say;
// AddItemListener reports items added and removed, cluster-wide. Items are encoded with
// dmap.DefaultCodec unless WithCodec says otherwise.
//
// # Where it lives, and what survives
//
// A queue is the entries of its own map (apart from user maps): a head and tail entry and one
// entry per item, all in the partition of the queue's name, on that partition's owner. Every
// operation is one partition processor run there (engine.ExecutePartition): atomic, applied
// with its synchronous backups before it returns, and remembered, so that an Offer or Poll
// retried after a failover is not applied twice. So with B backups (gridmap.Config.Backups):
//
//   - an acknowledged Offer survives the owner's crash (kill -9): a backup is promoted with
//     the item;
//   - an item Poll, Take or Drain returned is not handed out again; a removal in flight at a
//     crash is answered from the new owner's memory of it, not run twice;
//   - every call returns when its context ends; the items of a removal its caller gave up on
//     (applied, unanswered) go back to the head of the queue (giveback.go), the member trying
//     for as long as it runs; Service.GiveBacks counts what it could not settle;
//   - a member that leaves gracefully (gridmap.Member.Close) hands its queues over with its
//     partitions, items and all.
//
// The one gap is a call cut off for longer than the owner remembers answers (at least 30 s,
// engine.MaxRetryWindow, unless the queue's partition takes thousands of writes in that time;
// and no longer than its copy of the partition exists): the call sent again is then not run
// again but fails with ErrOutcomeUnknown. For a Poll, Take or Drain that means items may have
// been removed and reached no caller; for an Offer, that its item may be in the queue.
//
// Blocking calls wait on the caller's member, not on the owner: Take and Put try, then wait for
// a change of the queue (a cluster-wide listener on its head and tail entry, registered by
// the member while it has waiters) or a second at most, and try again.
//
// # Capacity, memory and stores
//
// gridmap.Config.Queues configures queues by name (Config): a capacity, and a store. A queue
// holds every item in the memory of its owner and of its backups, whether it has a store or not.
// Beyond its capacity, Offer fails with ErrQueueFull. An item also needs room in the memory
// budget (gridmap.Config.MemoryBudget) of its owner and backups, admitted like every map write:
// when the budget is used up by entries that cannot be evicted, an offer waits for room (a
// consumer taking items frees some) as long as its context allows, then fails with
// ErrMemoryLimit (dmap.ErrMemoryLimit): a queue refuses items, it never drops one. With a store (mapstore.Store, through the maps' write-behind
// or write-through machinery) a queue outlives a full cluster restart: the next cluster loads
// it back at its first use.
//
// # Sharding a queue
//
// A queue lives on one partition, so one member serves all of its traffic. When that member
// becomes the limit, use several queues ("jobs-0" ... "jobs-15"): their names hash to different
// partitions, so different members own them. Producers pick a shard (round robin, or a hash of
// the item's key when per-key order matters); consumers take from the shards their member owns
// first, then the others. docs/queue.md shows the pattern and its trade-offs (FIFO order holds
// per shard only).
package queue
