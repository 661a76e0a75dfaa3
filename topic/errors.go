package topic

import (
	"errors"

	"github.com/gridmap/gridmap/internal/engine"
)

// Errors returned by topics. Check them with errors.Is. Most are the engine's own values (the
// same as dmap's), so an error from any member, local or remote, matches them.
var (
	// ErrClosed: the subscription was closed, or the member's services have stopped.
	ErrClosed = engine.ErrClosed
	// ErrTimeout: the operation did not complete before its deadline (the caller's context or
	// gridmap.Config.OperationTimeout). A Publish that times out may or may not have been
	// published. The error also wraps the context's error.
	ErrTimeout = engine.ErrTimeout
	// ErrInvalidConfig: a Config or option is wrong; the message lists every problem.
	ErrInvalidConfig = engine.ErrInvalidConfig
	// ErrValueTooLarge: a message is larger than the member's maximum value size.
	ErrValueTooLarge = engine.ErrValueTooLarge
	// ErrCodec: a message could not be encoded or decoded with the topic's codec.
	ErrCodec = engine.ErrCodec
	// ErrBadRequest: a member sent a topic request or answer this member cannot decode.
	ErrBadRequest = engine.ErrBadRequest
	// ErrPartitionLost: every replica of the topic's partition died at once, so its ring and
	// sequence are gone (see dmap.ErrPartitionLost).
	ErrPartitionLost = engine.ErrPartitionLost
	// ErrNoProcessor: the topic's owner runs a gridmap without topics (a mixed-version cluster).
	ErrNoProcessor = engine.ErrNoProcessor
)

func isAlreadyRegistered(err error) bool { return errors.Is(err, engine.ErrAlreadyRegistered) }
