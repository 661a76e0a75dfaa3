package queue

import "time"

// SetRecheck changes how long the waiters of s wait without a wake-up (tests switch the
// rechecks off to see that the wake-ups alone release waiters).
func SetRecheck(s *Service, d time.Duration) { s.waits.recheck = d }

// Waiting returns how many callers wait on the queue called name on s's member, having
// with their listener registered.
func Waiting(s *Service, name string) int {
	s.waits.mu.Lock()
	ws := s.waits.bySet[structName+name]
	s.waits.mu.Unlock()
	if ws == nil {
		return 0
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.reg == nil {
		return 0
	}
	return len(ws.queued[forItem]) + len(ws.queued[forRoom])
}

// SetRecovery changes how long the takes of s send an unanswered poll again before their
// callers hear of the timeout (takeRecovery).
func SetRecovery(s *Service, d time.Duration) { s.recovery = d }
