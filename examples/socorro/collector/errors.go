package collector

import (
	"errors"
	"fmt"
)

var (
	// ErrTooLarge is returned by Parse when the body, after decompression, is larger than the
	// limit. The handler answers 413.
	ErrTooLarge = errors.New("collector: submission too large")

	// ErrInvalidConfig is returned by NewHandler and Config.Validate for an unusable
	// configuration.
	ErrInvalidConfig = errors.New("collector: invalid config")

	// ErrStoreFull is what a Store's Save wraps when it refuses a crash for want of room it
	// expects to get back (a grid at its memory budget, until write-behind, eviction or
	// processing frees some). The handler answers 503 with Retry-After, as for its own byte
	// budget, so the client keeps the report and sends it again: never a 500, never a loss.
	ErrStoreFull = errors.New("collector: store full")
)

// Reason says what was wrong with a malformed submission. Its text is Antenna's, so the answer
// "Discarded=malformed_<reason>" means the same thing to a client as Mozilla's collector's.
type Reason string

// The reasons a submission is malformed.
const (
	NoContentType           Reason = "no_content_type"           // no Content-Type header
	WrongContentType        Reason = "wrong_content_type"        // not multipart/form-data
	NoBoundary              Reason = "no_boundary"               // multipart without a boundary
	NoContentLength         Reason = "no_content_length"         // Content-Length 0: no body (a chunked body is fine)
	BadGzip                 Reason = "bad_gzip"                  // Content-Encoding gzip, body is not
	InvalidJSON             Reason = "invalid_json"              // the JSON annotations part does not parse
	InvalidJSONValue        Reason = "invalid_json_value"        // the JSON annotations are not an object
	InvalidDumpName         Reason = "invalid_dump_name"         // a dump name that is empty, reserved or repeated
	InvalidPayloadStructure Reason = "invalid_payload_structure" // the multipart body does not parse
	NoAnnotations           Reason = "no_annotations"            // a well-formed body without annotations
	InvalidUUID             Reason = "invalid_uuid"              // a uuid annotation that is not a crash ID
)

// MalformedError is the error Parse returns for a malformed submission.
type MalformedError struct {
	Reason Reason
	// Err is the underlying error, if any (a JSON syntax error, a multipart error).
	Err error
}

func (e *MalformedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("collector: malformed submission: %s: %v", e.Reason, e.Err)
	}
	return "collector: malformed submission: " + string(e.Reason)
}

func (e *MalformedError) Unwrap() error { return e.Err }

func malformed(r Reason, err error) error { return &MalformedError{Reason: r, Err: err} }
