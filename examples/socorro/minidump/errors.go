package minidump

import "errors"

var (
	// ErrNotMinidump is returned when the file does not start with a minidump header (the
	// "MDMP" signature and a known format version).
	ErrNotMinidump = errors.New("minidump: not a minidump")

	// ErrTruncated is returned when a structure runs past the end of the file or of the stream
	// that holds it.
	ErrTruncated = errors.New("minidump: truncated")

	// ErrMalformed is returned when a structure is inside the file but its content cannot be
	// right: a count that does not fit its stream, an odd string length, an unknown context.
	ErrMalformed = errors.New("minidump: malformed")

	// ErrNoException is returned by [Dump.Crash] when the dump has no exception stream: it was
	// written without a crash (a hang report, a dump on request), so there is nothing to blame.
	ErrNoException = errors.New("minidump: no exception stream")
)
