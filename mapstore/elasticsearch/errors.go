package elasticsearch

import "errors"

// Errors of this package. Check them with errors.Is. Entries the server refuses for good (a
// document its mapping refuses, a key that cannot be an _id) are reported with a
// *mapstore.RejectedError, which matches mapstore.ErrRejected; every error below means "retry
// later" to write-behind.
var (
	// ErrInvalidConfig: a Config is wrong; the message lists every problem.
	ErrInvalidConfig = errors.New("elasticsearch: invalid configuration")
	// ErrUnavailable: the server could not be reached, or did not answer in time.
	ErrUnavailable = errors.New("elasticsearch: server unavailable")
	// ErrBadResponse: the server's answer could not be understood (not JSON, or not the answer
	// the request calls for), so what it applied is unknown.
	ErrBadResponse = errors.New("elasticsearch: malformed answer")
	// ErrServer: the server refused the whole request (an HTTP error status), or kept refusing
	// some documents with a temporary error (such as 429, too many requests) through every try
	// of a call.
	ErrServer = errors.New("elasticsearch: request failed")
)
