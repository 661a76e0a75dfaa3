package mapstore

import "errors"

// Errors of this package. Check them with errors.Is.
var (
	// ErrInvalidConfig: a Config is wrong; the message lists every problem.
	ErrInvalidConfig = errors.New("mapstore: invalid configuration")
	// ErrDirtyLimit: a writer waited for dirty data to drain below its limit (Config.MaxDirtyBytes,
	// Config.MaxDirtyEntries) until its context ended. The write was not applied.
	ErrDirtyLimit = errors.New("mapstore: dirty data limit reached")
	// ErrClosed: the Flusher has been closed.
	ErrClosed = errors.New("mapstore: closed")
	// ErrFlushTimeout: Flush did not see every earlier write stored before its context ended.
	// The entries stay dirty and are still retried.
	ErrFlushTimeout = errors.New("mapstore: flush did not complete")
)
