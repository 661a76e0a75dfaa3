package minidump

import (
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf16"
)

// builder writes minidumps the way the format describes them, for the layouts no real dump in
// testdata covers (ARM, ARM64, other exception codes, padded lists). Expected values in these
// tests follow from what the builder put where the documentation says it goes.
type builder struct {
	streams []Stream
	body    []byte // everything after the header and directory, RVAs relative to bodyStart
	nStream int
}

func newBuilder(nStreams int) *builder { return &builder{nStream: nStreams} }

func (b *builder) bodyStart() uint32 { return headerSize + uint32(b.nStream)*directoryEntrySize }

// add appends data and returns its RVA.
func (b *builder) add(data []byte) uint32 {
	for len(b.body)%4 != 0 {
		b.body = append(b.body, 0)
	}
	rva := b.bodyStart() + uint32(len(b.body))
	b.body = append(b.body, data...)
	return rva
}

func (b *builder) stream(typ uint32, data []byte) {
	rva := b.add(data)
	b.streams = append(b.streams, Stream{Type: typ, Size: uint32(len(data)), RVA: rva})
}

func (b *builder) str(s string) uint32 {
	u := utf16.Encode([]rune(s))
	out := binary.LittleEndian.AppendUint32(nil, uint32(2*len(u)))
	for _, c := range u {
		out = binary.LittleEndian.AppendUint16(out, c)
	}
	return b.add(append(out, 0, 0))
}

func (b *builder) bytes() []byte {
	out := binary.LittleEndian.AppendUint32(nil, signature)
	out = binary.LittleEndian.AppendUint32(out, formatVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(b.nStream))
	out = binary.LittleEndian.AppendUint32(out, headerSize)
	out = binary.LittleEndian.AppendUint32(out, 0)          // checksum
	out = binary.LittleEndian.AppendUint32(out, 1700000000) // time
	out = binary.LittleEndian.AppendUint64(out, 0)
	for i := range b.nStream {
		var s Stream
		if i < len(b.streams) {
			s = b.streams[i]
		}
		out = binary.LittleEndian.AppendUint32(out, s.Type)
		out = binary.LittleEndian.AppendUint32(out, s.Size)
		out = binary.LittleEndian.AppendUint32(out, s.RVA)
	}
	return append(out, b.body...)
}

func sysInfo(arch uint16, platform uint32) []byte {
	s := make([]byte, systemInfoSize)
	binary.LittleEndian.PutUint16(s, arch)
	s[6] = 2 // CPUs
	binary.LittleEndian.PutUint32(s[20:], platform)
	return s
}

func exceptionStream(tid, code, flags uint32, addr uint64, info []uint64, ctx location) []byte {
	e := make([]byte, exceptionStreamSize)
	binary.LittleEndian.PutUint32(e, tid)
	binary.LittleEndian.PutUint32(e[8:], code)
	binary.LittleEndian.PutUint32(e[12:], flags)
	binary.LittleEndian.PutUint64(e[24:], addr)
	binary.LittleEndian.PutUint32(e[32:], uint32(len(info)))
	for i, v := range info {
		binary.LittleEndian.PutUint64(e[40+8*i:], v)
	}
	binary.LittleEndian.PutUint32(e[160:], ctx.Size)
	binary.LittleEndian.PutUint32(e[164:], ctx.RVA)
	return e
}

// context builds a CPU context of the given size with flags at flagsOff and the IP at ipOff.
func context(size, flagsOff int, flags uint32, ipOff, ipLen int, ip uint64) []byte {
	c := make([]byte, size)
	binary.LittleEndian.PutUint32(c[flagsOff:], flags)
	if ipLen == 4 {
		binary.LittleEndian.PutUint32(c[ipOff:], uint32(ip))
	} else {
		binary.LittleEndian.PutUint64(c[ipOff:], ip)
	}
	return c
}

func moduleList(b *builder, padded bool, mods ...Module) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(mods)))
	if padded {
		out = append(out, 0, 0, 0, 0)
	}
	for _, m := range mods {
		e := make([]byte, moduleSize)
		binary.LittleEndian.PutUint64(e, m.Base)
		binary.LittleEndian.PutUint32(e[8:], m.Size)
		binary.LittleEndian.PutUint32(e[20:], b.str(m.Name))
		out = append(out, e...)
	}
	return out
}

func threadList(ids ...uint32) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(ids)))
	for _, id := range ids {
		e := make([]byte, threadSize)
		binary.LittleEndian.PutUint32(e, id)
		out = append(out, e...)
	}
	return out
}

type synthCase struct {
	name     string
	arch     uint16
	platform uint32
	code     uint32
	flags    uint32
	addr     uint64
	info     []uint64
	ctx      []byte
	ip       uint64
	reason   string
	address  uint64
	arch2    string
}

var synthCases = []synthCase{
	{name: "linux arm64 segv maperr", arch: ArchARM64, platform: PlatformLinux, code: 11, flags: 1, addr: 0x10,
		ctx: context(912, 0, contextARM64|7, arm64PCOffset, 8, 0x5000_1234), ip: 0x5000_1234,
		reason: "SIGSEGV / SEGV_MAPERR", address: 0x10, arch2: "arm64"},
	{name: "android arm64 old breakpad layout", arch: ArchARM64BP, platform: PlatformAndroid, code: 6, flags: 0xfffffffa, addr: 0,
		ctx: context(800, 0, contextARM64Old|3, arm64PCOffset, 8, 0x5000_2000), ip: 0x5000_2000,
		reason: "SIGABRT / SI_TKILL", address: 0, arch2: "arm64"},
	{name: "linux arm bus", arch: ArchARM, platform: PlatformLinux, code: 7, flags: 1, addr: 0x5000_0003,
		ctx: context(368, 0, contextARM|2, armPCOffset, 4, 0x5000_0040), ip: 0x5000_0040,
		reason: "SIGBUS / BUS_ADRALN", address: 0x5000_0003, arch2: "arm"},
	{name: "linux fpe", arch: ArchAMD64, platform: PlatformLinux, code: 8, flags: 1, addr: 0x5000_0100,
		ctx: context(1232, 48, contextAMD64|1, amd64RIPOffset, 8, 0x5000_0100), ip: 0x5000_0100,
		reason: "SIGFPE / FPE_INTDIV", address: 0x5000_0100, arch2: "amd64"},
	{name: "windows av exec", arch: ArchAMD64, platform: PlatformWindowsNT, code: 0xc0000005, addr: 0xdead,
		info: []uint64{8, 0xdead}, ctx: context(1232, 48, contextAMD64|1, amd64RIPOffset, 8, 0xdead), ip: 0xdead,
		reason: "EXCEPTION_ACCESS_VIOLATION_EXEC", address: 0xdead, arch2: "amd64"},
	{name: "windows av read x86", arch: ArchX86, platform: PlatformWindowsNT, code: 0xc0000005, addr: 0x5000_0010,
		info: []uint64{0, 0x8}, ctx: context(716, 0, contextX86|1, x86EIPOffset, 4, 0x5000_0010), ip: 0x5000_0010,
		reason: "EXCEPTION_ACCESS_VIOLATION_READ", address: 0x8, arch2: "x86"},
	{name: "windows fast fail", arch: ArchARM64, platform: PlatformWindowsNT, code: 0xc0000409, addr: 0x5000_0020,
		info: []uint64{2}, ctx: context(912, 0, contextARM64|1, arm64PCOffset, 8, 0x5000_0020), ip: 0x5000_0020,
		reason: "STATUS_STACK_BUFFER_OVERRUN / FAST_FAIL_STACK_COOKIE_CHECK_FAILURE", address: 0x5000_0020, arch2: "arm64"},
	{name: "windows unknown code", arch: ArchX86, platform: PlatformWindowsNT, code: 0xe0000001, addr: 0x5000_0030,
		ctx: context(716, 0, contextX86|1, x86EIPOffset, 4, 0x5000_0030), ip: 0x5000_0030,
		reason: "0xe0000001", address: 0x5000_0030, arch2: "x86"},
	{name: "ios arm64 breakpoint", arch: ArchARM64, platform: PlatformIOS, code: 6, flags: 1, addr: 0x5000_0040,
		ctx: context(912, 0, contextARM64|1, arm64PCOffset, 8, 0x5000_0040), ip: 0x5000_0040,
		reason: "EXC_BREAKPOINT / EXC_ARM_BREAKPOINT", address: 0x5000_0040, arch2: "arm64"},
	{name: "macos protection failure", arch: ArchAMD64, platform: PlatformMacOS, code: 1, flags: 2, addr: 0x7000,
		ctx: context(1232, 48, contextAMD64|1, amd64RIPOffset, 8, 0x5000_0050), ip: 0x5000_0050,
		reason: "EXC_BAD_ACCESS / KERN_PROTECTION_FAILURE", address: 0x7000, arch2: "amd64"},
	{name: "macos x86 general protection", arch: ArchAMD64, platform: PlatformMacOS, code: 1, flags: 13, addr: 0,
		ctx: context(1232, 48, contextAMD64|1, amd64RIPOffset, 8, 0x5000_0060), ip: 0x5000_0060,
		reason: "EXC_BAD_ACCESS / EXC_I386_GPFLT", address: 0, arch2: "amd64"},
}

func (c synthCase) build(padded bool) []byte {
	b := newBuilder(5)
	b.stream(StreamSystemInfo, sysInfo(c.arch, c.platform))
	ctxRVA := b.add(c.ctx)
	b.stream(StreamException, exceptionStream(42, c.code, c.flags, c.addr, c.info, location{Size: uint32(len(c.ctx)), RVA: ctxRVA}))
	b.stream(StreamThreadList, threadList(7, 42))
	b.stream(StreamModuleList, moduleList(b, padded,
		Module{Base: 0x4000_0000, Size: 0x1000, Name: "/usr/lib/libother.so"},
		Module{Base: 0x5000_0000, Size: 0x10000, Name: `C:\app\xul.dll`}))
	return b.bytes()
}

func TestSyntheticDumps(t *testing.T) {
	for _, c := range synthCases {
		for _, padded := range []bool{false, true} {
			d, err := Parse(c.build(padded))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if len(d.Notes) != 0 {
				t.Errorf("%s: notes %q", c.name, d.Notes)
			}
			cr, notes, err := d.Crash()
			if err != nil || len(notes) != 0 {
				t.Fatalf("%s: %v %q", c.name, err, notes)
			}
			if cr.Reason != c.reason || cr.Address != c.address || cr.IP != c.ip || cr.ThreadIndex != 1 {
				t.Errorf("%s: got %q %#x ip %#x thread %d, want %q %#x ip %#x thread 1",
					c.name, cr.Reason, cr.Address, cr.IP, cr.ThreadIndex, c.reason, c.address, c.ip)
			}
			if d.System.CPUArch() != c.arch2 {
				t.Errorf("%s: arch %s, want %s", c.name, d.System.CPUArch(), c.arch2)
			}
			wantMod, wantOff := "xul.dll", c.ip-0x5000_0000
			if c.ip < 0x5000_0000 || c.ip >= 0x5001_0000 {
				wantMod = ""
			}
			gotMod := ""
			if cr.Module != nil {
				gotMod = cr.Module.BaseName()
			}
			if gotMod != wantMod || (wantMod != "" && cr.ModuleOffset != wantOff) {
				t.Errorf("%s: module %q+%#x, want %q+%#x", c.name, gotMod, cr.ModuleOffset, wantMod, wantOff)
			}
		}
	}
}

// A context whose flags do not match the system's CPU is refused with a note, not misread.
func TestContextMismatch(t *testing.T) {
	c := synthCases[0] // arm64
	c.ctx = context(1232, 48, contextAMD64|1, amd64RIPOffset, 8, 0x5000_0000)
	d, err := Parse(c.build(false))
	if err != nil {
		t.Fatal(err)
	}
	cr, notes, err := d.Crash()
	if err != nil {
		t.Fatal(err)
	}
	if cr.HasIP || len(notes) != 1 {
		t.Errorf("HasIP %v notes %q: want no IP and one note", cr.HasIP, notes)
	}
}

// A list whose count claims more entries than its stream holds is refused with a note: the count
// never drives an allocation.
func TestListCountTooLarge(t *testing.T) {
	b := newBuilder(1)
	tl := threadList(1, 2)
	binary.LittleEndian.PutUint32(tl, 0xffffffff)
	b.stream(StreamThreadList, tl)
	d, err := Parse(b.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if d.Threads != nil || len(d.Notes) != 1 || !strings.Contains(d.Notes[0], ErrMalformed.Error()) {
		t.Errorf("threads %v notes %q: want none and one note", d.Threads, d.Notes)
	}
}

func syntheticSeeds() [][]byte {
	var out [][]byte
	for _, c := range synthCases {
		out = append(out, c.build(false), c.build(true))
	}
	return out
}
