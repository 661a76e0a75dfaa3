package minidump

import "fmt"

// Linux signal numbers (the generic ones shared by x86, ARM and their 64-bit versions).
var linuxSignals = map[uint32]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
	7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
	13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT",
	19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU",
	25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR",
	31: "SIGSYS",
}

// linuxDumpRequested is the code Breakpad's Linux client writes for a dump taken on request
// without a crash.
const linuxDumpRequested uint32 = 0xffffffff

// si_code values per signal (siginfo.h), the ones with a signal-specific meaning.
var linuxSigCodes = map[uint32]map[int32]string{
	4: {1: "ILL_ILLOPC", 2: "ILL_ILLOPN", 3: "ILL_ILLADR", 4: "ILL_ILLTRP", 5: "ILL_PRVOPC",
		6: "ILL_PRVREG", 7: "ILL_COPROC", 8: "ILL_BADSTK"},
	5: {1: "TRAP_BRKPT", 2: "TRAP_TRACE", 3: "TRAP_BRANCH", 4: "TRAP_HWBKPT"},
	7: {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR", 4: "BUS_MCEERR_AR", 5: "BUS_MCEERR_AO"},
	8: {1: "FPE_INTDIV", 2: "FPE_INTOVF", 3: "FPE_FLTDIV", 4: "FPE_FLTOVF", 5: "FPE_FLTUND",
		6: "FPE_FLTRES", 7: "FPE_FLTINV", 8: "FPE_FLTSUB"},
	11: {1: "SEGV_MAPERR", 2: "SEGV_ACCERR", 3: "SEGV_BNDERR", 4: "SEGV_PKUERR"},
}

// si_code values any signal can carry: who sent it.
var linuxSenderCodes = map[int32]string{
	0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ",
	-4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL",
}

// linuxReason names a Linux (or Android) crash: the signal, then its si_code ("SIGSEGV /
// SEGV_MAPERR"). An si_code of 0 (SI_USER, which is also what a writer that did not record the
// code leaves) gives the signal alone, as Socorro's stackwalker reports it. The crash address is
// the signal's si_addr, which the writers store as the exception address.
func linuxReason(e *Exception) (string, uint64) {
	if e.Code == linuxDumpRequested {
		return "DUMP_REQUESTED", e.Address
	}
	name, ok := linuxSignals[e.Code]
	if !ok {
		return fmt.Sprintf("signal %d", e.Code), e.Address
	}
	code := int32(e.Flags)
	if code == 0 {
		return name, e.Address
	}
	if n, ok := linuxSigCodes[e.Code][code]; ok {
		return name + " / " + n, e.Address
	}
	if n, ok := linuxSenderCodes[code]; ok {
		return name + " / " + n, e.Address
	}
	return fmt.Sprintf("%s / %#x", name, e.Flags), e.Address
}
