package membership

import "errors"

var (
	// ErrConfig wraps every problem Config.Validate finds.
	ErrConfig = errors.New("membership: invalid config")
	// ErrClosed is returned by calls on a List after Shutdown or Leave.
	ErrClosed = errors.New("membership: closed")
	// ErrNoSeeds is returned by TryJoin when discovery yields no address
	// other than this member's own.
	ErrNoSeeds = errors.New("membership: no seeds")
	// ErrJoin wraps a failed join attempt (no seed answered).
	ErrJoin = errors.New("membership: join failed")
	// ErrMeta is returned when the node metadata cannot be encoded or is too
	// large for memberlist.
	ErrMeta = errors.New("membership: bad node metadata")
)
