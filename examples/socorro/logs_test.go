package main

import (
	"log/slog"
	"strings"
	"testing"
)

func TestLoggers(t *testing.T) {
	for _, c := range []struct {
		level     slog.Level
		member    func(l *slog.Logger)
		node      func(l *slog.Logger)
		want, not []string
	}{
		{
			level: slog.LevelInfo,
			member: func(l *slog.Logger) {
				l.Warn("raft: no known peers, aborting election")
				l.Warn("raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=")
				l.Warn("raft: failed to get previous log: previous-index=1 last-index=0 error=\"log not found\"")
				l.Warn("raft: appendEntries rejected, sending older logs: peer=x next=1")
				l.Info("partition copy failed, will retry", "err", "control: stale sync report")
				l.Warn("raft: failed to contact quorum of nodes, stepping down")
				l.Error("store failed")
			},
			node: func(l *slog.Logger) { l.Info("node started") },
			want: []string{"failed to contact quorum", "store failed", "node started"},
			not:  []string{"no known peers", "heartbeat timeout", "previous log", "older logs", "partition copy failed"},
		},
		{
			level: slog.LevelDebug,
			member: func(l *slog.Logger) {
				l.Warn("raft: no known peers, aborting election")
				l.Info("partition copy failed, will retry")
			},
			want: []string{"level=DEBUG msg=\"raft: no known peers", "level=INFO msg=\"partition copy failed"},
		},
	} {
		var b strings.Builder
		nodeLog, memberLog := loggers(&b, c.level, "node0")
		c.member(memberLog.With("component", "raft"))
		if c.node != nil {
			c.node(nodeLog)
		}
		out := b.String()
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("level %v: %q missing from\n%s", c.level, w, out)
			}
		}
		for _, n := range c.not {
			if strings.Contains(out, n) {
				t.Errorf("level %v: %q logged:\n%s", c.level, n, out)
			}
		}
	}
	if _, err := parseLevel("loud"); err == nil {
		t.Error("parseLevel accepted loud")
	}
}
