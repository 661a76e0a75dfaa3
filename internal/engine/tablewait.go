package engine

import "time"

// waitTableOrRetry is the pause between two rounds of a background loop that follows the
// partition table (the restorer, the folder recorder): it waits for the table to change
// (changed, from the cluster's Watch taken before the round) or, when again says the round left
// work undone, at most migrationRetry, so that the work is tried again without a table change.
// It reports stop when the service closes, which ends the caller's loop.
func (s *Service) waitTableOrRetry(changed <-chan struct{}, again bool) (stop bool) {
	var retry <-chan time.Time // nil: no retry, wait for a change only
	if again {
		t := time.NewTimer(migrationRetry)
		defer t.Stop()
		retry = t.C
	}
	select {
	case <-s.ctx.Done():
		return true
	case <-changed:
	case <-retry:
	}
	return false
}
