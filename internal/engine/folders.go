package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/internal/replicadisk"
	"github.com/gridmap/gridmap/partition"
)

// Which data folders a restore waits for (docs/restart.md, "Which folders a restore waits for").
//
// Each folder has a stable ID (replicadisk.Disk.FolderID) and remembers the folders of the
// cluster it serves in: runFolderRecorder writes, at every table change, the IDs of the folders
// of the table's members. While this member holds a partition that is not restored yet, it
// remembers them in addition to those it remembered (the unrestored partition may need any of
// them); once everything it holds is restored, it remembers only the table's.
//
// At a restart, a partition's owner restores it only once the folders of the members present
// include every folder that a present folder remembers (missingFolders). That set is closed:
// every remembered folder is present, so its own memory was consulted too. The newest copy of a
// partition is on a folder of the last cluster that served it, and that cluster's folders are
// remembered by each of them (the last members to stop remember only the members that stopped
// after them, who hold everything those handed off), so a copy newer than the best present
// one cannot be on an absent folder. Until then the restore waits, up to
// Config.RestoreTimeout from the member's start; then the partition's operations fail with
// ErrRestoreIncomplete naming the absent folders, unless Config.PartialRestore (or
// Service.AllowPartialRestore) lets the restore load the newest copy present.

// folderBook is this member's knowledge of data folders: its own folder's ID, the folder IDs of
// the members it asked (a member's folder is fixed for its process), and the wait's start.
type folderBook struct {
	self    string
	started time.Time
	partial atomic.Bool // AllowPartialRestore was called

	// recordMu serialises recordFolders (the recorder's and Close's last one).
	recordMu sync.Mutex

	mu       sync.Mutex
	ofMember map[partition.MemberID]string
	checks   map[partition.ID]folderCheck
	logged   string // the absent folders last logged, to log each change once
}

func newFolderBook(d *replicadisk.Disk, now time.Time) (*folderBook, error) {
	id, err := d.FolderID()
	if err != nil {
		return nil, err
	}
	return &folderBook{self: id, started: now, ofMember: map[partition.MemberID]string{}, checks: map[partition.ID]folderCheck{}}, nil
}

// missingFolders returns, sorted, the folders that the present folders remember and that are
// not present: a restore that loads the newest present copy is proven correct only when there
// are none. present and remembered may hold duplicates and "" (a member without a folder).
func missingFolders(present []string, remembered []string) []string {
	have := replicadisk.SortedIDs(present)
	var out []string
	for _, id := range replicadisk.SortedIDs(remembered) {
		if _, found := slices.BinarySearch(have, id); !found {
			out = append(out, id)
		}
	}
	return out
}

// AllowPartialRestore lets the partitions that wait for absent data folders be restored from
// the newest copies the present folders hold (the operator's decision that the absent folders
// will not come back; see Config.PartialRestore). It takes effect at the restorers' next try
// (at most a table change or half a second later).
func (s *Service) AllowPartialRestore() {
	if s.folders != nil {
		s.folders.partial.Store(true)
	}
}

// partialRestore reports whether a restore may load the newest present copy although folders
// are absent: the wait is over and the policy or the operator allows it.
func (s *Service) partialRestore() bool {
	return s.folders.partial.Load() || (s.cfg.PartialRestore && s.restoreWaitOver())
}

// restoreWaitOver reports whether Config.RestoreTimeout passed since the member started.
func (s *Service) restoreWaitOver() bool {
	return time.Since(s.folders.started) >= s.cfg.RestoreTimeout
}

// restoreWaitLeft is how long the wait for absent folders goes on.
func (s *Service) restoreWaitLeft() time.Duration {
	return s.cfg.RestoreTimeout - time.Since(s.folders.started)
}

// logAbsent logs, once per change of the list, the folders a restore waits for or misses.
func (s *Service) logAbsent(missing []string, refused bool) {
	list := strings.Join(missing, ",")
	b := s.folders
	b.mu.Lock()
	changed := b.logged != list+fmt.Sprint(refused)
	b.logged = list + fmt.Sprint(refused)
	b.mu.Unlock()
	if !changed {
		return
	}
	if refused {
		s.log.Error("restore refused: data folders that may hold the newest copies are absent; start their members, or allow a partial restore (Config.RestorePolicy, Member.AllowPartialRestore)",
			"absent folders", missing)
		return
	}
	s.log.Warn("restore waits for absent data folders that may hold the newest copies", "absent folders", missing, "wait left", s.restoreWaitLeft().Round(time.Second))
}

// folderOf returns the folder ID of member m ("" if it has no folder), asking it once.
func (s *Service) folderOf(ctx context.Context, m partition.MemberID) (string, error) {
	if m == s.self {
		return s.folders.self, nil
	}
	b := s.folders
	b.mu.Lock()
	id, ok := b.ofMember[m]
	b.mu.Unlock()
	if ok {
		return id, nil
	}
	r, err := s.askMark(ctx, m, -1)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	b.ofMember[m] = r.Folder
	b.mu.Unlock()
	return r.Folder, nil
}

// holdsUnrestored reports whether this member is a replica or a pending copy of a partition
// whose restore is not complete.
func (s *Service) holdsUnrestored(t *partition.Table) bool {
	for _, p := range s.parts {
		if (t.IsReplica(p.id, s.self) || t.IsPending(p.id, s.self)) && !p.isRestored() {
			return true
		}
	}
	return false
}

// recordFolders makes this member's folder remember the folders of t's members (and, while it
// holds an unrestored partition or a member did not say its folder, those it remembered). It
// reports whether it must be called again although t does not change.
func (s *Service) recordFolders(ctx context.Context) (again bool, err error) {
	s.folders.recordMu.Lock()
	defer s.folders.recordMu.Unlock()
	t := s.cluster.Table()
	if t.Epoch == 0 {
		return false, nil
	}
	var ids []string
	keep := s.holdsUnrestored(t)
	for _, m := range t.Members() {
		askCtx, cancel := context.WithTimeout(ctx, folderAskTimeout)
		id, askErr := s.folderOf(askCtx, m)
		cancel()
		if askErr != nil {
			// A member that does not answer (dead, not yet out of the table) must not hold the
			// others' record up; what its folder was is unknown, so nothing is forgotten.
			keep = true
			err = fmt.Errorf("asking member %s for its data folder: %w", m, askErr)
			continue
		}
		ids = append(ids, id)
	}
	old, rerr := s.cfg.Disk.Remembered()
	if rerr != nil {
		return true, rerr
	}
	if keep {
		ids = append(ids, old...)
	}
	ids = replicadisk.SortedIDs(ids)
	if !slices.Equal(ids, old) {
		if werr := s.cfg.Disk.Remember(ids); werr != nil {
			return true, werr
		}
		s.log.Debug("data folder remembers the cluster's folders", "folders", ids)
	}
	return keep, err
}

// recordLastFolders records, as the service closes, the folders of the latest table: the
// recorder may not have seen it yet (a member that left just before this one closes).
func (s *Service) recordLastFolders() {
	if s.folders == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*folderAskTimeout)
	defer cancel()
	if _, err := s.recordFolders(ctx); err != nil {
		s.log.Debug("recording the cluster's data folders at close", "err", err)
	}
}

// folderAskTimeout bounds the question of a member's folder ID when the recorder asks it.
const folderAskTimeout = 2 * time.Second

// runFolderRecorder keeps this member's folder's memory of the cluster's folders current
// (recordFolders), at every table change.
func (s *Service) runFolderRecorder() {
	defer s.wg.Done()
	for {
		_, changed := s.cluster.Watch()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OperationTimeout)
		again, err := s.recordFolders(ctx)
		cancel()
		if err != nil && !s.closed() {
			s.log.Debug("recording the cluster's data folders failed, will retry", "err", err)
		}
		if s.waitTableOrRetry(changed, again) {
			return
		}
	}
}

// folderCheck is the last finding of absent folders for a partition, shared by the operations
// waiting on it and the restorers so that they ask the members at most every migrationRetry.
type folderCheck struct {
	epoch   uint64
	at      time.Time
	missing []string
}

// absentFolders returns the folders that the folders of t's members remember and that are
// absent, for the restore of p (newestCopy), reusing a finding of the same table less than
// migrationRetry old.
func (s *Service) absentFolders(ctx context.Context, t *partition.Table, p partition.ID) ([]string, error) {
	b := s.folders
	b.mu.Lock()
	c, ok := b.checks[p]
	b.mu.Unlock()
	if ok && c.epoch == t.Epoch && time.Since(c.at) < migrationRetry {
		return c.missing, nil
	}
	_, _, missing, err := s.newestCopy(ctx, t, p)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if len(missing) == 0 {
		delete(b.checks, p)
	} else {
		b.checks[p] = folderCheck{epoch: t.Epoch, at: time.Now(), missing: missing}
	}
	b.mu.Unlock()
	return missing, nil
}
