package hbase

import (
	"errors"
	"strings"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/rpc"
)

// Errors of this package. Check them with errors.Is.
var (
	// ErrInvalidConfig: a Config or StoreConfig is wrong; the message lists every problem.
	ErrInvalidConfig = errors.New("hbase: invalid configuration")
	// ErrClosed: the Client has been closed.
	ErrClosed = errors.New("hbase: client closed")
	// ErrConnection: a connection to a server failed (refused, reset, closed). For a write it is
	// unknown whether the server applied it; every write of this package is idempotent, so the
	// caller (or the client's own retries) may repeat it.
	ErrConnection = errors.New("hbase: connection failed")
	// ErrMalformed: a server's answer could not be decoded or broke the protocol.
	ErrMalformed = errors.New("hbase: malformed response")
	// ErrRemote: the server answered with an exception. The error is a *ServerError with the
	// exception's Java class; errors.Is also matches the more specific errors below.
	ErrRemote = errors.New("hbase: server exception")
	// ErrNotServingRegion: the region is not (or no longer) served where the client looked for
	// it: it moved, split, is opening or closing, or its server is stopping. The client drops
	// the location and looks it up again; a call still failing with it ran out of retries.
	ErrNotServingRegion = errors.New("hbase: region not served")
	// ErrServerBusy: the server asked the client to back off (region too busy, call queue full,
	// server starting, master initialising).
	ErrServerBusy = errors.New("hbase: server busy")
	// ErrTableNotFound: the table does not exist.
	ErrTableNotFound = errors.New("hbase: table not found")
	// ErrTableExists: CreateTable found the table already there (EnsureTable does not fail with
	// it).
	ErrTableExists = errors.New("hbase: table exists")
	// ErrValueTooLarge: the server refused a cell larger than its limit
	// (hbase.server.keyvalue.maxsize, 10 MiB by default): raise that limit on the servers to
	// store larger values.
	ErrValueTooLarge = errors.New("hbase: value too large for the server")
	// ErrNoOtherServer: MoveRegion found no other live region server to move the region to.
	ErrNoOtherServer = errors.New("hbase: no other region server")
	// ErrBadKey: a map key cannot be turned into a row key by the store's RowKeys (for
	// SocorroKeys: it does not start with a crash ID), or a row key cannot be turned back.
	ErrBadKey = errors.New("hbase: bad key")
)

// ServerError is an exception a server answered a call with. errors.Is matches ErrRemote and,
// when the class is one the client knows, ErrNotServingRegion, ErrServerBusy,
// ErrTableNotFound, ErrTableExists or ErrValueTooLarge.
type ServerError struct {
	// Class is the exception's Java class, for example
	// "org.apache.hadoop.hbase.NotServingRegionException".
	Class string
	// Message is the first line of the server's message.
	Message string
	// DoNotRetry is set when the server says a retry cannot succeed.
	DoNotRetry bool
	kind       error
}

func (e *ServerError) Error() string {
	if e.Message != "" && strings.HasPrefix(e.Message, e.Class) {
		return "hbase: " + e.Message
	}
	if e.Message != "" {
		return "hbase: " + e.Class + ": " + e.Message
	}
	return "hbase: " + e.Class
}

// Unwrap returns ErrRemote and the specific sentinel, if any.
func (e *ServerError) Unwrap() []error {
	if e.kind != nil {
		return []error{ErrRemote, e.kind}
	}
	return []error{ErrRemote}
}

// Exception classes by short name, mapped to the sentinel a caller checks. Anything else is
// ErrRemote alone.
var exceptionKinds = map[string]error{
	"NotServingRegionException":    ErrNotServingRegion,
	"RegionMovedException":         ErrNotServingRegion,
	"RegionOpeningException":       ErrNotServingRegion,
	"RegionServerStoppedException": ErrNotServingRegion,
	"RegionServerAbortedException": ErrNotServingRegion,
	"WrongRegionException":         ErrNotServingRegion,
	"RegionTooBusyException":       ErrServerBusy,
	"CallQueueTooBigException":     ErrServerBusy,
	"CallDroppedException":         ErrServerBusy,
	"ServerNotRunningYetException": ErrServerBusy,
	"PleaseHoldException":          ErrServerBusy,
	"RetryImmediatelyException":    errRetryNow,
	"ServerTooBusyException":       ErrServerBusy,
	"MultiActionResultTooLarge":    errRetryNow,
	"TableNotFoundException":       ErrTableNotFound,
	"TableExistsException":         ErrTableExists,
	// A scanner the server no longer knows (lease expired, server restarted, a call repeated):
	// the scan reopens it after the last row it returned.
	"UnknownScannerException":          errScannerLost,
	"OutOfOrderScannerNextException":   errScannerLost,
	"ScannerResetException":            errScannerLost,
	"LeaseException":                   errScannerLost,
	"RegionServerRunningException":     ErrServerBusy,
	"NoServerForRegionException":       ErrNotServingRegion,
	"RegionOfflineException":           ErrNotServingRegion,
	"NotAllMetaRegionsOnlineException": ErrNotServingRegion,
}

// errScannerLost: the server dropped the scanner; the scan reopens it.
var errScannerLost = errors.New("hbase: scanner lost")

// errRetryNow: the server answered part of a multi request and asks for the rest at once
// (its response reached hbase.server.scanner.max.result.size): no back-off.
var errRetryNow = errors.New("hbase: retry the rest at once")

// newServerError classifies an exception by class name (and, for the cell size limit, which
// HBase reports as a plain DoNotRetryIOException, by message).
func newServerError(class, message string, doNotRetry bool) *ServerError {
	e := &ServerError{Class: class, Message: message, DoNotRetry: doNotRetry}
	short := class
	if i := strings.LastIndexByte(short, '.'); i >= 0 {
		short = short[i+1:]
	}
	e.kind = exceptionKinds[short]
	if e.kind == nil && strings.Contains(message, "exceeds limit") && strings.Contains(message, "size") {
		e.kind = ErrValueTooLarge
	}
	return e
}

// convertErr maps the transport's errors to this package's.
func convertErr(err error) error {
	if err == nil {
		return nil
	}
	var re *rpc.RemoteError
	if errors.As(err, &re) {
		return newServerError(re.Class, re.Message, re.DoNotRetry)
	}
	switch {
	case errors.Is(err, rpc.ErrMalformed) && errors.Is(err, rpc.ErrConnection):
		return errors.Join(ErrConnection, ErrMalformed, err)
	case errors.Is(err, rpc.ErrMalformed):
		return errors.Join(ErrMalformed, err)
	case errors.Is(err, rpc.ErrConnection):
		return errors.Join(ErrConnection, err)
	}
	return err
}

// retryable reports whether a call failing with err may succeed when repeated (after the
// region is looked up again, or after a back-off).
func retryable(err error) bool {
	var se *ServerError
	if errors.As(err, &se) {
		return se.kind == ErrNotServingRegion || se.kind == ErrServerBusy || se.kind == errScannerLost || se.kind == errRetryNow
	}
	return errors.Is(err, ErrConnection) || errors.Is(err, ErrNotServingRegion) || errors.Is(err, ErrServerBusy)
}
