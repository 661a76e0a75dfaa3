package listener

import "errors"

var (
	// ErrClosed is returned by Register after the dispatcher was closed.
	ErrClosed = errors.New("listener: dispatcher closed")
	// ErrStillRunning is wrapped (with the context's error) by Close when its context ends
	// while some listeners are still inside OnEvent.
	ErrStillRunning = errors.New("listener: listeners still running")
	// ErrInvalidOptions is wrapped by every problem Options.Validate reports.
	ErrInvalidOptions = errors.New("listener: invalid options")
	// ErrInvalidConfig is wrapped by every problem Config.Validate reports.
	ErrInvalidConfig = errors.New("listener: invalid config")
)
