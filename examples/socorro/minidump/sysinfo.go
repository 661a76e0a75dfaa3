package minidump

import (
	"fmt"
	"strings"
)

// Processor architectures (PROCESSOR_ARCHITECTURE_*, and Breakpad's values above 0x8000).
const (
	ArchX86     uint16 = 0
	ArchMIPS    uint16 = 1
	ArchPPC     uint16 = 3
	ArchARM     uint16 = 5
	ArchIA64    uint16 = 6
	ArchAMD64   uint16 = 9
	ArchARM64   uint16 = 12
	ArchSPARC   uint16 = 0x8001
	ArchPPC64   uint16 = 0x8002
	ArchARM64BP uint16 = 0x8003 // Breakpad's ARM64 value, from before Microsoft assigned 12
	ArchMIPS64  uint16 = 0x8004
	ArchUnknown uint16 = 0xffff
)

// Platform identifiers (VER_PLATFORM_WIN32_NT and Breakpad's MD_OS_* values).
const (
	PlatformWindowsNT uint32 = 2
	PlatformUnix      uint32 = 0x8000
	PlatformMacOS     uint32 = 0x8101
	PlatformIOS       uint32 = 0x8102
	PlatformLinux     uint32 = 0x8201
	PlatformSolaris   uint32 = 0x8202
	PlatformAndroid   uint32 = 0x8203
	PlatformPS3       uint32 = 0x8204
	PlatformNaCl      uint32 = 0x8205
	PlatformFuchsia   uint32 = 0x8206
)

const systemInfoSize = 56

// SystemInfo is the MINIDUMP_SYSTEM_INFO stream.
type SystemInfo struct {
	Arch       uint16 // ProcessorArchitecture
	CPULevel   uint16 // ProcessorLevel (the CPU family on x86)
	CPURev     uint16 // ProcessorRevision (model and stepping on x86)
	CPUCount   uint8  // NumberOfProcessors
	Major      uint32 // MajorVersion
	Minor      uint32 // MinorVersion
	Build      uint32 // BuildNumber
	PlatformID uint32
	// CSDVersion is the service pack on Windows; Breakpad and Crashpad put the kernel version
	// (Linux) or the build string (macOS) there.
	CSDVersion string
	// CPUVendor is the x86 CPUID vendor string ("GenuineIntel"), empty on other CPUs.
	CPUVendor string
}

func readSystemInfo(data, b []byte) (*SystemInfo, error) {
	if len(b) < systemInfoSize {
		return nil, fmt.Errorf("%w: %d bytes, need %d", ErrTruncated, len(b), systemInfoSize)
	}
	s := &SystemInfo{
		Arch:       le.Uint16(b),
		CPULevel:   le.Uint16(b[2:]),
		CPURev:     le.Uint16(b[4:]),
		CPUCount:   b[6],
		Major:      le.Uint32(b[8:]),
		Minor:      le.Uint32(b[12:]),
		Build:      le.Uint32(b[16:]),
		PlatformID: le.Uint32(b[20:]),
	}
	if rva := le.Uint32(b[24:]); rva != 0 {
		csd, err := readString(data, rva)
		if err != nil {
			return nil, fmt.Errorf("CSD version: %w", err)
		}
		s.CSDVersion = csd
	}
	if s.Arch == ArchX86 || s.Arch == ArchAMD64 {
		// The CPU union starts at 32; on x86 it opens with the 12-byte CPUID vendor. Crashpad
		// and Windows leave it zero on amd64 (they fill the other member of the union).
		v := strings.TrimRight(string(b[32:44]), "\x00")
		if isPrintable(v) {
			s.CPUVendor = v
		}
	}
	return s, nil
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// OS names the operating system the way Socorro does ("Windows NT", "Mac OS X", "Linux").
func (s *SystemInfo) OS() string {
	switch s.PlatformID {
	case 0:
		return "Windows 3.1"
	case 1:
		return "Windows 9x"
	case PlatformWindowsNT:
		return "Windows NT"
	case PlatformUnix:
		return "Unix"
	case PlatformMacOS:
		return "Mac OS X"
	case PlatformIOS:
		return "iOS"
	case PlatformLinux:
		return "Linux"
	case PlatformSolaris:
		return "Solaris"
	case PlatformAndroid:
		return "Android"
	case PlatformPS3:
		return "PS3"
	case PlatformNaCl:
		return "NaCl"
	case PlatformFuchsia:
		return "Fuchsia"
	}
	return fmt.Sprintf("unknown platform %#x", s.PlatformID)
}

// OSVersion is "major.minor.build" followed by the CSD version when there is one ("5.1.2600
// Service Pack 2", "10.15.7 19H114"). On Linux and Android, whose writers leave the numbers 0 and
// put uname's "Linux <release> <version> <machine>" in the CSD version, it is release and
// version ("4.9.60-linuxkit-aufs #1 SMP Mon Nov 6 16:00:12 UTC 2017"), as Socorro shows it.
func (s *SystemInfo) OSVersion() string {
	if s.PlatformID == PlatformLinux || s.PlatformID == PlatformAndroid {
		if rest, ok := strings.CutPrefix(s.CSDVersion, "Linux "); ok {
			if i := strings.LastIndexByte(rest, ' '); i > 0 {
				return rest[:i]
			}
			return rest
		}
	}
	v := fmt.Sprintf("%d.%d.%d", s.Major, s.Minor, s.Build)
	if s.CSDVersion != "" {
		v += " " + s.CSDVersion
	}
	return v
}

// CPUArch names the CPU architecture the way Socorro does ("x86", "amd64", "arm64").
func (s *SystemInfo) CPUArch() string {
	switch s.Arch {
	case ArchX86:
		return "x86"
	case ArchMIPS:
		return "mips"
	case ArchPPC:
		return "ppc"
	case ArchARM:
		return "arm"
	case ArchIA64:
		return "ia64"
	case ArchAMD64:
		return "amd64"
	case ArchARM64, ArchARM64BP:
		return "arm64"
	case ArchSPARC:
		return "sparc"
	case ArchPPC64:
		return "ppc64"
	case ArchMIPS64:
		return "mips64"
	}
	return fmt.Sprintf("unknown %#x", s.Arch)
}

// CPUInfo describes the processor the way Breakpad's stackwalker does ("GenuineIntel family 6
// model 13 stepping 8") on x86 and amd64, and is empty elsewhere.
func (s *SystemInfo) CPUInfo() string {
	if s.Arch != ArchX86 && s.Arch != ArchAMD64 {
		return ""
	}
	v := fmt.Sprintf("family %d model %d stepping %d", s.CPULevel, s.CPURev>>8, s.CPURev&0xff)
	if s.CPUVendor != "" {
		v = s.CPUVendor + " " + v
	}
	return v
}
