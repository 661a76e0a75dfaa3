package console

import "errors"

// ErrInvalidConfig wraps every problem Config.Validate reports.
var ErrInvalidConfig = errors.New("console: invalid configuration")

// ErrNoPublisher is returned by a publish while no Publisher is wired in (no topic service on
// this member).
var ErrNoPublisher = errors.New("console: publishing to topics is not available on this member")
