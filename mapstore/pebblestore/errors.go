package pebblestore

import "errors"

// Errors returned by a Store. Check them with errors.Is.
var (
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("pebblestore: closed")
	// ErrCorrupt: a stored value failed its length or checksum check (a blob file was truncated
	// or damaged, for example by a machine crash with Options.NoSync).
	ErrCorrupt = errors.New("pebblestore: corrupt value")
	// ErrInvalidOptions: Options are wrong; the message lists every problem.
	ErrInvalidOptions = errors.New("pebblestore: invalid options")
)
