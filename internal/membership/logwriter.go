package membership

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// LogWriter returns an io.Writer that turns the line-oriented output of
// memberlist ("[WARN] memberlist: ...") and hclog ("[INFO]  raft: ...", with
// DisableTime) into records of l, tagged with component. A line's level is
// read from its bracketed tag; with demoteInfo, INFO lines are logged at
// Debug (raft reports every state change at INFO). Lines without a tag are
// logged at Info. A nil l yields io.Discard.
//
// The writer is safe for concurrent use; each Write may carry several lines.
func LogWriter(l *slog.Logger, component string, demoteInfo bool) io.Writer {
	if l == nil {
		return io.Discard
	}
	return &logWriter{l: l.With("component", component), demoteInfo: demoteInfo}
}

type logWriter struct {
	mu         sync.Mutex
	l          *slog.Logger
	demoteInfo bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		level, msg := w.parse(s)
		w.l.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

func (w *logWriter) parse(s string) (slog.Level, string) {
	open := strings.IndexByte(s, '[')
	if open < 0 {
		return slog.LevelInfo, s
	}
	end := strings.IndexByte(s[open:], ']')
	if end < 0 {
		return slog.LevelInfo, s
	}
	tag := s[open+1 : open+end]
	msg := strings.TrimSpace(s[open+end+1:])
	switch tag {
	case "TRACE", "DEBUG":
		return slog.LevelDebug, msg
	case "INFO":
		if w.demoteInfo {
			return slog.LevelDebug, msg
		}
		return slog.LevelInfo, msg
	case "WARN":
		return slog.LevelWarn, msg
	case "ERR", "ERROR":
		return slog.LevelError, msg
	}
	return slog.LevelInfo, s
}
