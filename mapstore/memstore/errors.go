package memstore

import "errors"

// Errors returned by a Store. Check them with errors.Is.
var (
	// ErrDown: the store was taken down with Down; every call fails until Up.
	ErrDown = errors.New("memstore: store is down")
	// ErrInjected: a failure injected with FailNext without an error of its own.
	ErrInjected = errors.New("memstore: injected failure")
)
