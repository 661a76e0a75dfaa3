package minidump

import "fmt"

// Crash is what a processor reports about the crash a dump records.
type Crash struct {
	// Reason names the exception in the platform's own terms: a Windows exception code such as
	// "EXCEPTION_ACCESS_VIOLATION_WRITE", a Linux signal and si_code such as "SIGSEGV /
	// SEGV_MAPERR", a Mach exception and code such as "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS".
	Reason string
	// Address is the crash address: the faulting data address of an access violation or
	// bad access, otherwise where the exception was raised.
	Address uint64
	// ThreadID is the crashed thread's ID; ThreadIndex its position in the thread list, -1 when
	// the thread list does not have it.
	ThreadID    uint32
	ThreadIndex int
	// IP is the crashed thread's instruction pointer at the exception, valid when HasIP.
	IP    uint64
	HasIP bool
	// Module is the module that contains IP, nil when none does (a jump to a bad address, code
	// generated at run time). ModuleOffset is IP minus the module's base.
	Module       *Module
	ModuleOffset uint64
}

// Crash interprets the exception stream. It returns ErrNoException when the dump has none. Parts
// the dump cannot give (no thread context, a context of an unknown layout) are left unset and
// explained in the notes returned beside the Crash, for the processor to pass on.
func (d *Dump) Crash() (Crash, []string, error) {
	e := d.Exception
	if e == nil {
		return Crash{}, nil, ErrNoException
	}
	c := Crash{ThreadID: e.ThreadID, ThreadIndex: d.threadIndex(e.ThreadID)}
	var notes []string
	arch, platform := ArchUnknown, uint32(0)
	if d.System != nil {
		arch, platform = d.System.Arch, d.System.PlatformID
	}
	switch platform {
	case PlatformLinux, PlatformAndroid:
		c.Reason, c.Address = linuxReason(e)
	case PlatformMacOS, PlatformIOS:
		c.Reason, c.Address = macReason(e, arch)
	case PlatformWindowsNT, 0, 1:
		c.Reason, c.Address = windowsReason(e)
	default:
		c.Reason, c.Address = fmt.Sprintf("%#08x / %#08x", e.Code, e.Flags), e.Address
		notes = append(notes, fmt.Sprintf("unknown platform %#x: crash reason in raw numbers", platform))
	}
	if d.Threads != nil && c.ThreadIndex < 0 {
		notes = append(notes, errNoThread(e.ThreadID).Error())
	}

	// The exception stream's own context is the state at the exception; the thread list's
	// context for the same thread is the fallback (some writers point both at one copy).
	l := e.context
	if l.Size == 0 && c.ThreadIndex >= 0 {
		l = d.Threads[c.ThreadIndex].context
	}
	if l.Size == 0 {
		notes = append(notes, "crashing thread has no CPU context: no instruction pointer")
		return c, notes, nil
	}
	ctx, err := d.readContext(l)
	if err != nil {
		notes = append(notes, fmt.Sprintf("crashing thread's CPU context: %v", err))
		return c, notes, nil
	}
	c.IP, c.HasIP = ctx.IP, true
	if m := d.ModuleAt(ctx.IP); m != nil {
		c.Module, c.ModuleOffset = m, ctx.IP-m.Base
	}
	return c, notes, nil
}
