package gridmap

import "errors"

// Errors returned by Start and Member methods. Map operations return the sentinels of package
// dmap (dmap.ErrNotFound, dmap.ErrTimeout, ...).
var (
	// ErrInvalidConfig: Config.Validate found problems (the message lists every one), or Start
	// met a configuration error.
	ErrInvalidConfig = errors.New("gridmap: invalid configuration")
	// ErrClosed: the member has been closed.
	ErrClosed = errors.New("gridmap: member closed")
)
