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
	// ErrRefused is returned by TryJoin when the members it reached and this
	// one do not accept each other: another cluster name or join secret (see
	// Admission), or gossip keys that do not match. The error says which.
	ErrRefused = errors.New("membership: refused by the cluster")
	// ErrNoKeyring is returned by the key rotation methods of a List
	// started without gossip keys.
	ErrNoKeyring = errors.New("membership: gossip encryption is off (no GossipKeys at start)")
	// ErrMeta is returned when the node metadata cannot be encoded or is too
	// large for memberlist.
	ErrMeta = errors.New("membership: bad node metadata")
)
