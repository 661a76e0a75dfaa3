package minidump

import "fmt"

// Mach exception types (EXC_*).
var machExceptions = map[uint32]string{
	1: "EXC_BAD_ACCESS", 2: "EXC_BAD_INSTRUCTION", 3: "EXC_ARITHMETIC", 4: "EXC_EMULATION",
	5: "EXC_SOFTWARE", 6: "EXC_BREAKPOINT", 7: "EXC_SYSCALL", 8: "EXC_MACH_SYSCALL",
	9: "EXC_RPC_ALERT", 10: "EXC_CRASH", 11: "EXC_RESOURCE", 12: "EXC_GUARD", 13: "EXC_CORPSE_NOTIFY",
	0x43507378: "SIMULATED", // Crashpad's dump without a crash ("CPsx")
}

const (
	excBadAccess      = 1
	excBadInstruction = 2
	excArithmetic     = 3
	excSoftware       = 5
	excBreakpoint     = 6
	excCrash          = 10
)

// BSD signal numbers as macOS numbers them (they differ from Linux's above 6).
var bsdSignals = map[uint32]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGEMT",
	8: "SIGFPE", 9: "SIGKILL", 10: "SIGBUS", 11: "SIGSEGV", 12: "SIGSYS", 13: "SIGPIPE",
	14: "SIGALRM", 15: "SIGTERM",
}

// kern_return_t values an EXC_BAD_ACCESS carries as its first code.
var kernReturns = map[uint32]string{
	1: "KERN_INVALID_ADDRESS", 2: "KERN_PROTECTION_FAILURE", 8: "KERN_NO_ACCESS",
	9: "KERN_MEMORY_FAILURE", 10: "KERN_MEMORY_ERROR", 50: "KERN_CODESIGN_ERROR",
}

// First codes whose meaning depends on the CPU.
var (
	machCodesX86 = map[uint32]map[uint32]string{
		excBadAccess:      {13: "EXC_I386_GPFLT"},
		excBadInstruction: {1: "EXC_I386_INVOP"},
		excArithmetic: {1: "EXC_I386_DIV", 2: "EXC_I386_INTO", 3: "EXC_I386_NOEXT",
			4: "EXC_I386_EXTOVR", 5: "EXC_I386_EXTERR", 6: "EXC_I386_EMERR", 7: "EXC_I386_BOUND",
			8: "EXC_I386_SSEEXTERR"},
		excBreakpoint: {1: "EXC_I386_SGL", 2: "EXC_I386_BPT"},
	}
	machCodesARM = map[uint32]map[uint32]string{
		excBadAccess:      {0x101: "EXC_ARM_DA_ALIGN", 0x102: "EXC_ARM_DA_DEBUG"},
		excBadInstruction: {1: "EXC_ARM_UNDEFINED"},
		excArithmetic:     {1: "EXC_ARM_FP_IO", 2: "EXC_ARM_FP_DZ", 3: "EXC_ARM_FP_OF", 4: "EXC_ARM_FP_UF", 5: "EXC_ARM_FP_IX", 7: "EXC_ARM_FP_ID"},
		excBreakpoint:     {1: "EXC_ARM_BREAKPOINT"},
	}
	machSoftwareCodes = map[uint32]string{
		0x10000: "EXC_UNIX_BAD_SYSCALL", 0x10001: "EXC_UNIX_BAD_PIPE", 0x10002: "EXC_UNIX_ABORT",
		0x10003: "EXC_SOFT_SIGNAL",
	}
)

// macReason names a macOS or iOS crash: the Mach exception type, then its first code in the
// terms of that type ("EXC_BAD_ACCESS / KERN_INVALID_ADDRESS"). The crash address is the
// exception address, where the writers store the faulting address of a bad access.
func macReason(e *Exception, arch uint16) (string, uint64) {
	if e.Code == 0 {
		if raw, ok := e.info(0); ok && raw == excCrash {
			// Crashpad unwraps an EXC_CRASH into the exception that caused it and keeps the
			// raw exception and first code as the first two parameters. Exception 0 means
			// there was none: the process died of a signal (abort(), a kill), which the kernel
			// put in bits 24-31 of the raw code.
			code0, _ := e.info(1)
			sig := uint32(code0>>24) & 0xff
			if n, ok := bsdSignals[sig]; ok {
				return "EXC_CRASH / " + n, e.Address
			}
			return fmt.Sprintf("EXC_CRASH / signal %d", sig), e.Address
		}
	}
	name, ok := machExceptions[e.Code]
	if !ok {
		return fmt.Sprintf("%#x / %#x", e.Code, e.Flags), e.Address
	}
	var code string
	switch {
	case e.Code == excBadAccess && kernReturns[e.Flags] != "":
		code = kernReturns[e.Flags]
	case e.Code == excSoftware:
		code = machSoftwareCodes[e.Flags]
	case arch == ArchX86 || arch == ArchAMD64:
		code = machCodesX86[e.Code][e.Flags]
	case arch == ArchARM || arch == ArchARM64 || arch == ArchARM64BP:
		code = machCodesARM[e.Code][e.Flags]
	}
	if code == "" {
		code = fmt.Sprintf("%#x", e.Flags)
	}
	return name + " / " + code, e.Address
}
