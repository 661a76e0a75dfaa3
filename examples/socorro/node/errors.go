package node

import "errors"

// ErrInvalidConfig is returned by Start for an unusable Config.
var ErrInvalidConfig = errors.New("node: invalid config")
