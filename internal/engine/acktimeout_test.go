package engine

import (
	"testing"
	"time"
)

// A batch's attempt grows with its bytes, so a live backup receiving multi-MB values is not
// reported unreachable for the time the bytes take; a deadline still bounds it.
func TestAckTimeoutGrowsWithBatchSize(t *testing.T) {
	s := &Service{cfg: Config{BackupAckTimeout: 500 * time.Millisecond}}
	if got, full := s.ackTimeout("m", time.Time{}, 0); got != 500*time.Millisecond || !full {
		t.Fatalf("empty batch: %v, %v", got, full)
	}
	if got, _ := s.ackTimeout("m", time.Time{}, backupBytesAllowance); got != 1500*time.Millisecond {
		t.Fatalf("batch of one second's allowance: %v, want 1.5s", got)
	}
	if got, full := s.ackTimeout("m", time.Now().Add(200*time.Millisecond), 20<<20); got > 200*time.Millisecond || full {
		t.Fatalf("a deadline 200ms away: %v, %v", got, full)
	}
}
