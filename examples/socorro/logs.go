package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// routineRaft are the warnings raft logs in every healthy start-up, leader election and leave: a
// member that has not joined yet has no peers, a follower's first election timeout, a new
// follower that the leader catches up with older log entries, a pre-vote refused because a
// leader is known, an entry already applied from a snapshot. They say nothing is wrong, so the
// demo logs them at Debug; every other raft warning (a lost quorum, a failed heartbeat) stays a
// warning.
var routineRaft = []string{
	"raft: no known peers, aborting election",
	"raft: heartbeat timeout reached, starting election",
	"raft: election timeout reached, restarting election",
	"raft: failed to get previous log",
	"raft: appendEntries rejected, sending older logs",
	"raft: entering candidate state",
	"raft: rejecting pre-vote request since we have a leader",
	"raft: skipping application of old log",
}

// routineHandler lowers routineRaft warnings to Debug before its inner handler sees them.
type routineHandler struct{ inner slog.Handler }

func (h routineHandler) Enabled(ctx context.Context, l slog.Level) bool {
	// A warning may be routine, lowered to Debug, and then dropped by Handle.
	return h.inner.Enabled(ctx, l)
}

func (h routineHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && isRoutineRaft(r.Message) {
		r.Level = slog.LevelDebug
		if !h.inner.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return h.inner.Handle(ctx, r)
}

func (h routineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return routineHandler{h.inner.WithAttrs(as)}
}

func (h routineHandler) WithGroup(name string) slog.Handler {
	return routineHandler{h.inner.WithGroup(name)}
}

func isRoutineRaft(msg string) bool {
	m := strings.ToLower(msg)
	for _, p := range routineRaft {
		if strings.HasPrefix(m, strings.ToLower(p)) {
			return true
		}
	}
	return false
}

// parseLevel reads a -log flag value.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("-log %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// loggers returns the node's logger, at level, and its gridmap member's. The member logs its
// routine work (members joining, partitions moving, copies retried during a migration) at Info;
// the demo shows it only with -log debug, and otherwise its warnings and errors, less raft's
// routine ones (routineRaft), so that a healthy start-up prints only the node's own lines.
func loggers(w io.Writer, level slog.Level, name string) (nodeLog, memberLog *slog.Logger) {
	nodeLog = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("node", name)
	memberLevel := max(level, slog.LevelWarn)
	if level <= slog.LevelDebug {
		memberLevel = level
	}
	memberLog = slog.New(routineHandler{slog.NewTextHandler(w, &slog.HandlerOptions{Level: memberLevel})}).With("node", name)
	return nodeLog, memberLog
}
