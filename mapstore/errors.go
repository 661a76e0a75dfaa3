package mapstore

import "errors"

// Errors of this package. Check them with errors.Is.
var (
	// ErrInvalidConfig: a Config is wrong; the message lists every problem.
	ErrInvalidConfig = errors.New("mapstore: invalid configuration")
	// ErrDirtyLimit: a writer waited for dirty data to drain below its limit (Config.MaxDirtyBytes,
	// Config.MaxDirtyEntries) until its context ended. The write was not applied.
	ErrDirtyLimit = errors.New("mapstore: dirty data limit reached")
)
