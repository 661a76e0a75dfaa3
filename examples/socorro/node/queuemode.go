package node

import (
	"context"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/queue"
)

// Processing modes (Config.Mode).
const (
	// ModeListener: each node processes the crashes it owns, told by a local entry listener on
	// map process (the design's first mode: processing next to the data).
	ModeListener = "listener"
	// ModeQueue: collectors also offer each crash ID to queue WorkQueue, and any node's
	// processors take them (the design's alternative: collectors and processors decoupled; a
	// node processes crashes it does not own, reading them from their owners).
	ModeQueue = "queue"
)

// WorkQueue is the queue of crash IDs to process in ModeQueue.
const WorkQueue = "processQueue"

// startQueueWorkers opens the work queue and starts Config.Processors workers that take crash
// IDs from it and process them, until runCtx ends. The process entries the collector writes stay
// the durable record of what is left to do: an ID taken by a node that died before it was done
// is processed by the sweeper of the entry's owner.
func (n *Node) startQueueWorkers(runCtx context.Context) error {
	var err error
	if n.work, err = queue.New[string](n.member.Queues(), WorkQueue); err != nil {
		return err
	}
	for range n.cfg.Processors {
		n.wg.Go(func() {
			for {
				id, err := n.work.Take(runCtx)
				if err != nil {
					if runCtx.Err() != nil {
						return
					}
					n.log.Warn("queue mode: take", "err", err)
					t := time.NewTimer(time.Second) // the queue's owner may be failing over
					select {
					case <-runCtx.Done():
						t.Stop()
						return
					case <-t.C:
					}
					continue
				}
				n.processOne(runCtx, id)
			}
		})
	}
	return nil
}

// enqueue offers a saved crash's ID to the work queue (ModeQueue). A failed offer loses
// nothing: the crash's process entry is saved, and its owner's sweeper processes it.
func (n *Node) enqueue(ctx context.Context, id string) {
	if n.work == nil {
		return
	}
	if err := n.work.Offer(ctx, id); err != nil {
		n.log.Warn("queue mode: offer (the sweeper will process the crash)", "id", id, "err", err)
	}
}

func checkMode(mode string) error {
	switch mode {
	case ModeListener, ModeQueue:
		return nil
	}
	return fmt.Errorf("%w: Mode %q: want %q or %q", ErrInvalidConfig, mode, ModeListener, ModeQueue)
}
