package minidump

import "fmt"

// CPU context flags that name the layout (the CONTEXT_* architecture bits).
const (
	contextX86      uint32 = 0x00010000
	contextAMD64    uint32 = 0x00100000
	contextARM      uint32 = 0x40000000
	contextARM64    uint32 = 0x00400000
	contextARM64Old uint32 = 0x80000000 // Breakpad's ARM64 layout, 64-bit flags word
)

// Where the instruction pointer sits in each context layout, and the smallest context that
// holds it.
const (
	x86EIPOffset   = 184 // after flags, 6 debug registers, the 112-byte float area, 4 segment and 8 general registers (EBP before EIP)
	amd64RIPOffset = 248 // after 6 home slots, flags, MxCsr, 6 segments, EFlags, 6 debug registers, 16 general registers
	arm64PCOffset  = 264 // after flags (and CPSR), x0-x28, fp, lr, sp: the same in both ARM64 layouts
	armPCOffset    = 64  // r15 after the 32-bit flags word and r0-r14
)

// Context is the part of a thread's saved CPU state the processor uses.
type Context struct {
	// Arch is the layout the context was read with (ArchX86, ArchAMD64, ArchARM, ArchARM64).
	Arch uint16
	// IP is the instruction pointer: EIP, RIP or PC.
	IP uint64
}

// readContext decodes the CPU context at l. The system info's architecture chooses the layout when
// known; the context's own flags must agree with it, so a context of another layout is refused
// rather than misread.
func (d *Dump) readContext(l location) (Context, error) {
	b, err := l.bytes(d.data)
	if err != nil {
		return Context{}, err
	}
	arch := ArchUnknown
	if d.System != nil {
		arch = d.System.Arch
	}
	if arch == ArchUnknown {
		arch = guessArch(b)
	}
	switch arch {
	case ArchX86:
		if len(b) < x86EIPOffset+4 || le.Uint32(b)&contextX86 == 0 {
			return Context{}, badContext(arch, b)
		}
		return Context{Arch: ArchX86, IP: uint64(le.Uint32(b[x86EIPOffset:]))}, nil
	case ArchAMD64:
		if len(b) < amd64RIPOffset+8 || le.Uint32(b[48:])&contextAMD64 == 0 {
			return Context{}, badContext(arch, b)
		}
		return Context{Arch: ArchAMD64, IP: le.Uint64(b[amd64RIPOffset:])}, nil
	case ArchARM64, ArchARM64BP:
		if len(b) < arm64PCOffset+8 || le.Uint32(b)&(contextARM64|contextARM64Old) == 0 {
			return Context{}, badContext(arch, b)
		}
		return Context{Arch: ArchARM64, IP: le.Uint64(b[arm64PCOffset:])}, nil
	case ArchARM:
		if len(b) < armPCOffset+4 || le.Uint32(b)&contextARM == 0 {
			return Context{}, badContext(arch, b)
		}
		return Context{Arch: ArchARM, IP: uint64(le.Uint32(b[armPCOffset:]))}, nil
	}
	return Context{}, fmt.Errorf("%w: no context layout for CPU %#x", ErrMalformed, arch)
}

// guessArch picks a layout from the context's flags when the dump has no system info.
func guessArch(b []byte) uint16 {
	if len(b) >= 52 && le.Uint32(b[48:])&contextAMD64 != 0 {
		return ArchAMD64
	}
	if len(b) < 4 {
		return ArchUnknown
	}
	switch f := le.Uint32(b); {
	case f&contextX86 != 0:
		return ArchX86
	case f&(contextARM64|contextARM64Old) != 0:
		return ArchARM64
	case f&contextARM != 0:
		return ArchARM
	}
	return ArchUnknown
}

func badContext(arch uint16, b []byte) error {
	return fmt.Errorf("%w: %d-byte context does not have the layout of CPU %#x", ErrMalformed, len(b), arch)
}
