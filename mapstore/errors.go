package mapstore

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of this package. Check them with errors.Is.
var (
	// ErrInvalidConfig: a Config is wrong; the message lists every problem.
	ErrInvalidConfig = errors.New("mapstore: invalid configuration")
	// ErrDirtyLimit: a writer waited for dirty data to drain below its limit (Config.MaxDirtyBytes,
	// Config.MaxDirtyEntries) until its context ended. The write was not applied.
	ErrDirtyLimit = errors.New("mapstore: dirty data limit reached")
	// ErrRejected: a store refused some entries for good (the database can never accept them, for
	// example a document its mapping refuses); retrying would fail the same way. A store reports
	// it with a *RejectedError.
	ErrRejected = errors.New("mapstore: entries rejected for good")
)

// RejectedError is what Store, Delete, StoreAll or DeleteAll return when the store refused some
// entries of the call permanently and applied every other entry. It matches ErrRejected.
//
// Every other error means "retry later" (the whole call stays dirty and is tried again). A
// RejectedError instead tells write-behind that the call is done: the other entries are
// acknowledged as stored, and the rejected ones are not retried (they would fail forever and hold
// the queue, and its dirty budget, hostage); gridmap counts them in the map's persistence
// statistics and logs them. The map keeps the value in memory. With write-through the writer
// sees the error and the write is not applied.
type RejectedError struct {
	// Keys are the refused keys (copies: they stay valid after the call).
	Keys [][]byte
	// Reasons[i] says why Keys[i] was refused.
	Reasons []error
}

// Error implements error: the number of keys refused and the first reasons.
func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mapstore: %d entries rejected for good", len(e.Keys))
	for i, k := range e.Keys {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Keys)-i)
			break
		}
		var r error
		if i < len(e.Reasons) {
			r = e.Reasons[i]
		}
		fmt.Fprintf(&b, "; %q: %v", k, r)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Rejected returns the *RejectedError in err's chain, or nil: the keys the store refused for
// good, every other entry of the call being applied.
func Rejected(err error) *RejectedError {
	var r *RejectedError
	if errors.As(err, &r) {
		return r
	}
	return nil
}
