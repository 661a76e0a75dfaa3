package storetest

import "errors"

// Errors of this package. Check them with errors.Is. A call refused because the server's store
// is down also matches memstore.ErrDown.
var (
	// ErrRemote: the server's store returned an error other than being down; the message is the
	// store's.
	ErrRemote = errors.New("storetest: store call failed")
	// ErrProtocol: a request or response body could not be decoded, or an answer had an
	// unexpected status.
	ErrProtocol = errors.New("storetest: malformed message")
)
