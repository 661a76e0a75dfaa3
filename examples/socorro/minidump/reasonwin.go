package minidump

import "fmt"

// Windows exception codes (NTSTATUS values) with the names Breakpad and Socorro report.
var windowsExceptions = map[uint32]string{
	0x40000015: "STATUS_FATAL_APP_EXIT",
	0x40010005: "DBG_CONTROL_C",
	0x80000001: "EXCEPTION_GUARD_PAGE",
	0x80000002: "EXCEPTION_DATATYPE_MISALIGNMENT",
	0x80000003: "EXCEPTION_BREAKPOINT",
	0x80000004: "EXCEPTION_SINGLE_STEP",
	0xc0000005: "EXCEPTION_ACCESS_VIOLATION",
	0xc0000006: "EXCEPTION_IN_PAGE_ERROR",
	0xc0000008: "EXCEPTION_INVALID_HANDLE",
	0xc000000d: "STATUS_INVALID_PARAMETER",
	0xc0000017: "STATUS_NO_MEMORY",
	0xc000001d: "EXCEPTION_ILLEGAL_INSTRUCTION",
	0xc0000025: "EXCEPTION_NONCONTINUABLE_EXCEPTION",
	0xc0000026: "EXCEPTION_INVALID_DISPOSITION",
	0xc000008c: "EXCEPTION_ARRAY_BOUNDS_EXCEEDED",
	0xc000008d: "EXCEPTION_FLT_DENORMAL_OPERAND",
	0xc000008e: "EXCEPTION_FLT_DIVIDE_BY_ZERO",
	0xc000008f: "EXCEPTION_FLT_INEXACT_RESULT",
	0xc0000090: "EXCEPTION_FLT_INVALID_OPERATION",
	0xc0000091: "EXCEPTION_FLT_OVERFLOW",
	0xc0000092: "EXCEPTION_FLT_STACK_CHECK",
	0xc0000093: "EXCEPTION_FLT_UNDERFLOW",
	0xc0000094: "EXCEPTION_INT_DIVIDE_BY_ZERO",
	0xc0000095: "EXCEPTION_INT_OVERFLOW",
	0xc0000096: "EXCEPTION_PRIV_INSTRUCTION",
	0xc00000fd: "EXCEPTION_STACK_OVERFLOW",
	0xc0000135: "STATUS_DLL_NOT_FOUND",
	0xc0000142: "STATUS_DLL_INIT_FAILED",
	0xc0000194: "EXCEPTION_POSSIBLE_DEADLOCK",
	0xc0000374: "STATUS_HEAP_CORRUPTION",
	0xc0000409: "STATUS_STACK_BUFFER_OVERRUN",
	0xc0000417: "STATUS_INVALID_CRUNTIME_PARAMETER",
	0xc0000420: "STATUS_ASSERTION_FAILURE",
	0xe06d7363: "OUT_OF_MEMORY_OR_CPP_EXCEPTION", // MSVC's C++ throw ("msc")
	0x0517a7ed: "SIMULATED",                      // Crashpad's dump without a crash
}

// Fast-fail codes carried in the first parameter of STATUS_STACK_BUFFER_OVERRUN
// (__fastfail), the ones seen in practice.
var fastFailCodes = map[uint64]string{
	0:  "FAST_FAIL_LEGACY_GS_VIOLATION",
	1:  "FAST_FAIL_VTGUARD_CHECK_FAILURE",
	2:  "FAST_FAIL_STACK_COOKIE_CHECK_FAILURE",
	3:  "FAST_FAIL_CORRUPT_LIST_ENTRY",
	4:  "FAST_FAIL_INCORRECT_STACK",
	5:  "FAST_FAIL_INVALID_ARG",
	6:  "FAST_FAIL_GS_COOKIE_INIT",
	7:  "FAST_FAIL_FATAL_APP_EXIT",
	8:  "FAST_FAIL_RANGE_CHECK_FAILURE",
	10: "FAST_FAIL_GUARD_ICALL_CHECK_FAILURE",
	13: "FAST_FAIL_INVALID_BUFFER_ACCESS",
	14: "FAST_FAIL_INVALID_BALANCED_TREE",
	18: "FAST_FAIL_INVALID_SET_OF_CONTEXT",
	23: "FAST_FAIL_INVALID_FIBER_SWITCH",
	25: "FAST_FAIL_INVALID_IDLE_STATE",
	37: "FAST_FAIL_UNSAFE_EXTENSION_CALL",
	38: "FAST_FAIL_INVALID_FILE_OPERATION",
	47: "FAST_FAIL_HEAP_METADATA_CORRUPTION",
	57: "FAST_FAIL_CRYPTO_LIBRARY",
	69: "FAST_FAIL_INVALID_THREAD",
}

// windowsReason names a Windows exception. An access violation or in-page error says whether the
// faulting access was a read, a write or an execution (first parameter 0, 1 or 8) and faulted on
// the address in the second parameter, which is the crash address; otherwise the crash address is
// where the exception was raised.
func windowsReason(e *Exception) (string, uint64) {
	name, ok := windowsExceptions[e.Code]
	if !ok {
		name = fmt.Sprintf("%#08x", e.Code)
	}
	switch e.Code {
	case 0xc0000005, 0xc0000006:
		kind, hasKind := e.info(0)
		addr, hasAddr := e.info(1)
		if hasKind {
			switch kind {
			case 0:
				name += "_READ"
			case 1:
				name += "_WRITE"
			case 8:
				name += "_EXEC"
			default:
				name += fmt.Sprintf(" / %#x", kind)
			}
		}
		if hasAddr {
			return name, addr
		}
	case 0xc0000409:
		if code, has := e.info(0); has {
			if ff, known := fastFailCodes[code]; known {
				name += " / " + ff
			} else {
				name += fmt.Sprintf(" / FAST_FAIL %d", code)
			}
		}
	}
	return name, e.Address
}
