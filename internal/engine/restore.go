package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/gridmap/gridmap/internal/replicadisk"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Restore from the data folders (docs/restart.md).
//
// A partition starts its life in a cluster unrestored. Before its owner serves any operation on
// it, the owner restores it once for the whole cluster (ensureRestored):
//  1. it waits until the table names Config.RestoreMembers members;
//  2. it asks every member of the table for the mark of the newest complete copy of the
//     partition in its folder, its folder's ID and the folders it remembers; while a remembered
//     folder is absent, it waits for it (folders.go), up to Config.RestoreTimeout, then refuses
//     (ErrRestoreIncomplete) unless a partial restore is allowed; then it picks the newest
//     copy (replicadisk.Best);
//  3. it writes, as ordinary writes of the partition (so its backups apply and persist them),
//     the record of the partition's new life (the chosen copy's life plus one), then the chosen
//     copy's entries, page by page, then the record that the restore is complete.
//
// The records travel with the partition (backups, copies), so a later owner does not restore it
// again. A restore interrupted by a move or a crash is done again by the next owner: no
// operation was served meanwhile, so it rewrites the same entries. Until its complete record is
// written, the new life's copies carry no mark: the copies of the previous life stay in the
// folders, and a cluster stopped during the restore restores from them again.

// restorePage bounds the bytes of one restore page (and so of one write of the restore).
const restorePageBytes = 1 << 20

// isRestored reports whether p's restore is complete, caching the answer.
func (p *part) isRestored() bool {
	if p.restored.Load() {
		return true
	}
	p.mu.RLock()
	_, done := p.rs.restoreState()
	p.mu.RUnlock()
	if done {
		p.restored.Store(true)
	}
	return done
}

// ensureRestored restores partition p from the data folders when this member owns it and it is
// not restored yet (see the top of this file). It returns at once without a data folder, and
// when this member does not own p (the caller's ownership check then refuses the operation).
// The waits for members and folders hold no lock: each caller waits within its own context.
func (s *Service) ensureRestored(ctx context.Context, p *part) error {
	if p.disk == nil || p.isRestored() {
		return nil
	}
	for {
		owner, err := s.awaitRestorable(ctx, p)
		if err != nil || !owner {
			return err
		}
		if done, err := s.restore(ctx, p); done || err != nil {
			return err
		}
		// A folder went absent between the wait and the restore: wait again.
	}
}

// awaitRestorable waits until the table names Config.RestoreMembers members and no folder
// that the present folders remember is absent (or a partial restore is allowed), while this
// member owns p. It reports whether this member owns p then.
func (s *Service) awaitRestorable(ctx context.Context, p *part) (owner bool, err error) {
	t, changed := s.cluster.Watch()
	for {
		if t.Owner(p.id) != s.self || p.isRestored() {
			return false, nil
		}
		var missing []string
		if len(t.Members()) >= s.cfg.RestoreMembers {
			if missing, err = s.absentFolders(ctx, t, p.id); err != nil {
				return false, err
			}
			if len(missing) == 0 || s.partialRestore() {
				return true, nil
			}
			if s.restoreWaitOver() {
				s.logAbsent(missing, true)
				return false, fmt.Errorf("%w: partition %d: absent data folders %s may hold its newest copy", ErrRestoreIncomplete, p.id, strings.Join(missing, ", "))
			}
			s.logAbsent(missing, false)
		}
		wait := time.NewTimer(max(min(s.restoreWaitLeft(), migrationRetry), time.Millisecond))
		select {
		case <-changed:
			t, changed = s.cluster.Watch()
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			if missing == nil {
				return false, fmt.Errorf("%w: partition %d waits for %d members to restore it from the data folders, the table has %d: %w",
					ErrTimeout, p.id, s.cfg.RestoreMembers, len(t.Members()), ctx.Err())
			}
			return false, fmt.Errorf("%w: partition %d waits for absent data folders %s to restore it: %w",
				ErrTimeout, p.id, strings.Join(missing, ", "), ctx.Err())
		case <-s.ctx.Done():
			wait.Stop()
			return false, ErrClosed
		}
		wait.Stop()
	}
}

// restore restores p under its restore lock, once, from the newest copy in the folders. It
// reports done false when a remembered folder is absent (and no partial restore is allowed):
// the caller waits again.
func (s *Service) restore(ctx context.Context, p *part) (done bool, err error) {
	p.restoreMu.Lock()
	defer p.restoreMu.Unlock()
	if p.isRestored() {
		return true, nil
	}
	t := s.cluster.Table()
	if t.Owner(p.id) != s.self {
		return true, nil
	}
	best, found, missing, err := s.newestCopy(ctx, t, p.id)
	if err != nil {
		return false, err
	}
	if len(missing) != 0 {
		if !s.partialRestore() {
			return false, nil
		}
		s.log.Warn("partial restore: partition restored from the newest copy present, absent data folders may have held a newer one",
			"partition", p.id, "absent folders", missing, "from", best.Member, "mark", best.Mark.String())
	}
	life := uint64(1)
	if found {
		life = best.Mark.Life + 1
	}
	if t.Partitions[p.id].LostAt != 0 {
		// A partition lost in this life (every replica died) starts empty, in a life later than
		// every copy in the folders (they hold what it had when the cluster started, or before
		// the loss), so that none of them is restored at the next restart.
		found = false
	}
	lifeValue := binary.BigEndian.AppendUint64(nil, life)
	write := func(decide func(w *writeBatch)) error {
		resp := s.ownerWrite(ctx, p, s.cluster.Table().Epoch, time.Time{}, nil, func(w *writeBatch) opResponse {
			decide(w)
			return opResponse{}
		})
		if resp.Status != statusOK {
			return fmt.Errorf("restoring partition %d: %w", p.id, resp.Status.err(resp.Msg))
		}
		return nil
	}
	if err := write(func(w *writeBatch) {
		if found {
			// A retry from the earlier life is ErrOutcomeUnknown, not decided afresh: the copy
			// holds its effect, not its answer (answers.go). On the backups too.
			w.emit(reachMarkSince(s.started))
		}
		w.emit(mutation{Map: restoreMap, Kind: mutSet, Key: []byte(restoreLife), Value: lifeValue})
	}); err != nil {
		return false, err
	}
	if found {
		var cursor []byte
		for {
			page, err := s.fetchCopy(ctx, partition.MemberID(best.Member), p.id, best.Mark.Life, cursor)
			if err != nil {
				return false, err
			}
			now := s.now()
			if err := write(func(w *writeBatch) {
				for _, e := range page.Entries {
					if e.ExpireAt != 0 && e.ExpireAt <= now {
						continue
					}
					w.emit(mutation{Map: e.Map, Kind: mutSet, Key: e.Key, Value: e.Value, ExpireAt: e.ExpireAt})
				}
			}); err != nil {
				return false, err
			}
			if !page.More {
				break
			}
			cursor = page.Next
		}
	}
	if err := write(func(w *writeBatch) {
		w.emit(mutation{Map: restoreMap, Kind: mutSet, Key: []byte(restoreDone), Value: []byte{}})
	}); err != nil {
		return false, err
	}
	p.restored.Store(true)
	if found {
		s.log.Debug("partition restored from the data folders", "partition", p.id, "from", best.Member, "mark", best.Mark.String(), "life", life)
	}
	return true, nil
}

// newestCopy asks every member of t for the mark of its folder's newest complete copy of p, its
// folder's ID and the folders it remembers, and returns the newest copy and the remembered
// folders that are absent (missingFolders). A member that does not answer is asked again until
// ctx ends: its copy may be the only up-to-date one.
func (s *Service) newestCopy(ctx context.Context, t *partition.Table, p partition.ID) (best replicadisk.Candidate, found bool, missing []string, err error) {
	var cands []replicadisk.Candidate
	var present, remembered []string
	for _, m := range t.Members() {
		for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
			r, err := s.askMark(ctx, m, int32(p))
			if err == nil {
				if r.Has {
					cands = append(cands, replicadisk.Candidate{Member: string(m), Mark: replicadisk.Mark{Life: r.Life, Epoch: r.Epoch, Seq: r.Seq, Owner: r.Owner}})
				}
				present = append(present, r.Folder)
				remembered = append(remembered, r.Remembered...)
				break
			}
			s.log.Debug("restore: asking a member for its copy's mark failed, retrying", "partition", p, "member", m, "err", err)
			if err := sleepCtx(ctx, s.ctx, wait); err != nil {
				return best, false, nil, fmt.Errorf("restoring partition %d: member %s: %w", p, m, err)
			}
		}
	}
	best, found = replicadisk.Best(cands)
	return best, found, missingFolders(present, remembered), nil
}

// sleepCtx waits d, or returns an error when ctx or the service ends first.
func sleepCtx(ctx, service context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	case <-service.Done():
		return ErrClosed
	}
}

// askMark asks member m for the mark of its folder's newest complete copy of partition p (none
// for p -1), its folder's ID and the folders it remembers.
func (s *Service) askMark(ctx context.Context, m partition.MemberID, p int32) (restoreMark, error) {
	if m == s.self {
		return s.localMark(p)
	}
	body, err := encodeRestoreRequest(&restoreRequest{Part: p})
	if err != nil {
		return restoreMark{}, err
	}
	out, err := s.callPeer(ctx, m, msgRestoreMark, body)
	if err != nil {
		return restoreMark{}, err
	}
	return decodeRestoreMark(out)
}

// localMark is this member's answer to askMark.
func (s *Service) localMark(p int32) (restoreMark, error) {
	var r restoreMark
	if s.cfg.Disk == nil {
		return r, nil
	}
	if p >= 0 && int(p) < len(s.parts) {
		m, ok, err := s.cfg.Disk.NewestMark(uint32(p))
		if err != nil {
			return r, err
		}
		r = restoreMark{Has: ok, Life: m.Life, Epoch: m.Epoch, Seq: m.Seq, Owner: m.Owner}
	}
	remembered, err := s.cfg.Disk.Remembered()
	if err != nil {
		return r, err
	}
	r.Folder, r.Remembered = s.folders.self, remembered
	return r, nil
}

// fetchCopy reads a page of member m's copy of p of life life, after cursor.
func (s *Service) fetchCopy(ctx context.Context, m partition.MemberID, p partition.ID, life uint64, cursor []byte) (restorePage, error) {
	if m == s.self {
		return s.readCopy(restoreRequest{Part: int32(p), Life: life, Cursor: cursor, Max: restorePageBytes})
	}
	body, err := encodeRestoreRequest(&restoreRequest{Part: int32(p), Life: life, Cursor: cursor, Max: restorePageBytes})
	if err != nil {
		return restorePage{}, err
	}
	out, err := s.callPeer(ctx, m, msgRestoreFetch, body)
	if err != nil {
		return restorePage{}, fmt.Errorf("restoring partition %d from %s: %w", p, m, err)
	}
	return decodeRestorePage(out)
}

// callPeer sends a request to member m and returns the answer's body.
func (s *Service) callPeer(ctx context.Context, m partition.MemberID, typ transport.MsgType, body []byte) ([]byte, error) {
	addr, ok := s.cluster.MemberAddr(m)
	if !ok {
		return nil, fmt.Errorf("dmap: no address for member %s", m)
	}
	out, err := s.caller.Call(ctx, addr, transport.Message{Type: typ, Body: body})
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

// readCopy reads a page of this member's folder's copy of a partition.
func (s *Service) readCopy(req restoreRequest) (restorePage, error) {
	var page restorePage
	if s.cfg.Disk == nil || req.Part < 0 || int(req.Part) >= len(s.parts) {
		return page, fmt.Errorf("%w: no data folder copy of partition %d here", ErrBadRequest, req.Part)
	}
	max := min(max(req.Max, 1), restorePageBytes)
	next, more, err := s.cfg.Disk.Entries(uint32(req.Part), req.Life, req.Cursor, max, func(e replicadisk.Entry) {
		page.Entries = append(page.Entries, restoreEntry{Map: e.Map, Key: e.Key, Value: e.Value, ExpireAt: e.ExpireAt})
	})
	page.Next, page.More = next, more
	return page, err
}

// handleRestoreMark serves msgRestoreMark.
func (s *Service) handleRestoreMark(ctx context.Context, msg transport.Message) (transport.Message, error) {
	req, err := decodeRestoreRequest(msg.Body)
	if err != nil {
		return transport.Message{}, err
	}
	r, err := s.localMark(req.Part)
	if err != nil {
		return transport.Message{}, err
	}
	body, err := encodeRestoreMark(&r)
	return transport.Message{Body: body}, err
}

// handleRestoreFetch serves msgRestoreFetch.
func (s *Service) handleRestoreFetch(ctx context.Context, msg transport.Message) (transport.Message, error) {
	req, err := decodeRestoreRequest(msg.Body)
	if err != nil {
		return transport.Message{}, err
	}
	page, err := s.readCopy(req)
	if err != nil {
		return transport.Message{}, err
	}
	body, err := encodeRestorePage(&page)
	return transport.Message{Body: body}, err
}

// runRestorer restores, in the background, the partitions this member owns that are not
// restored yet, so that a restarted cluster loads its data folders without waiting for
// operations. Worker i of restoreWorkers takes the partitions i modulo restoreWorkers.
func (s *Service) runRestorer(worker int) {
	defer s.wg.Done()
	for {
		t, changed := s.cluster.Watch()
		pending := false
		for i := worker; i < len(s.parts); i += restoreWorkers {
			p := s.parts[i]
			if t.Epoch == 0 || t.Owner(p.id) != s.self || p.isRestored() {
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OperationTimeout)
			err := s.ensureRestored(ctx, p)
			cancel()
			if err != nil && !s.closed() {
				pending = true
				s.log.Debug("partition restore not done, will retry", "partition", p.id, "err", err)
			}
		}
		if s.waitTableOrRetry(changed, pending) {
			return
		}
	}
}

// restoreWorkers is how many partitions a member restores at once in the background.
const restoreWorkers = 4
