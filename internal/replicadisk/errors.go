package replicadisk

import "errors"

var (
	// ErrCorrupt reports a record of the data folder that this version cannot read.
	ErrCorrupt = errors.New("replicadisk: corrupt record")
	// ErrClosed reports a call on a closed Disk.
	ErrClosed = errors.New("replicadisk: closed")
)
