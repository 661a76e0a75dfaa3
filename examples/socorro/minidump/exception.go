package minidump

import "fmt"

const (
	exceptionStreamSize = 168
	maxExceptionParams  = 15 // EXCEPTION_MAXIMUM_PARAMETERS
)

// Exception is the MINIDUMP_EXCEPTION_STREAM: which thread crashed, the exception record and
// where the crashed thread's CPU context is.
type Exception struct {
	ThreadID uint32
	// Code is ExceptionCode: a Windows exception code, a Linux signal number, or a macOS
	// exception type (EXC_*), depending on the platform.
	Code uint32
	// Flags is ExceptionFlags: on Linux the signal's si_code, on macOS the first exception code
	// (a kern_return_t for EXC_BAD_ACCESS).
	Flags   uint32
	Address uint64 // ExceptionAddress
	// Info holds the NumberParameters used entries of ExceptionInformation.
	Info    []uint64
	context location
}

func readException(b []byte) (*Exception, error) {
	if len(b) < exceptionStreamSize {
		return nil, fmt.Errorf("%w: %d bytes, need %d", ErrTruncated, len(b), exceptionStreamSize)
	}
	// ThreadId, alignment, then MINIDUMP_EXCEPTION at 8: code, flags, record (u64), address
	// (u64), NumberParameters, alignment, ExceptionInformation[15] (u64), then the context's
	// location descriptor at 160.
	e := &Exception{
		ThreadID: le.Uint32(b),
		Code:     le.Uint32(b[8:]),
		Flags:    le.Uint32(b[12:]),
		Address:  le.Uint64(b[24:]),
		context:  readLocation(b[160:]),
	}
	n := le.Uint32(b[32:])
	if n > maxExceptionParams {
		return nil, fmt.Errorf("%w: %d exception parameters", ErrMalformed, n)
	}
	e.Info = make([]uint64, n)
	for i := range e.Info {
		e.Info[i] = le.Uint64(b[40+8*i:])
	}
	return e, nil
}

// info returns exception parameter i, and whether the record has it.
func (e *Exception) info(i int) (uint64, bool) {
	if i < len(e.Info) {
		return e.Info[i], true
	}
	return 0, false
}
