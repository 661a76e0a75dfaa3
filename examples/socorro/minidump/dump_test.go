package minidump

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readDump(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realDump is what each real dump in testdata must give. Every value below was also checked
// against a second, independent reader: rust-minidump's minidump-stackwalk 0.27.0 (the
// stackwalker Socorro runs), whose JSON output agrees on OS, OS version, CPU, CPU count, process
// ID, crash reason, crash address, crashing thread, module count, thread count, the first
// module's debug ID and debug file, and the crashing frame's module and offset, for all five
// readable dumps, except simple-crashpad's reason: it prints the raw "0x00000000 / 0x00000000"
// where this reader unwraps Crashpad's EXC_CRASH (see below). Where the values come from:
//   - the raw fields (codes, flags, addresses, thread IDs, process IDs, versions, CPU counts,
//     module bases, module and thread counts) were read with an independent parser, the Python
//     "minidump" package, and for linux-mini's process ID from the text of its /proc status
//     stream ("Pid:\t1304");
//   - testdata's README says what each dump is (Windows XP x86 access violation, Linux amd64
//     SIGSEGV, macOS amd64 bad access); Windows XP is NT 5.1 build 2600;
//   - test.dmp is Breakpad's minidump2.dmp, written by its test_app.cc, whose crash is a write
//     through a bad pointer: an access violation with first parameter 1 (write) at 0x45; on x86
//     the exception address of an access violation is the faulting instruction, so the context's
//     EIP must equal it (0x40429e), 0x429e into test_app.exe (base 0x400000);
//   - simple-crashpad.dmp's exception parameters are Crashpad's unwrapped EXC_CRASH: raw
//     exception 10 (EXC_CRASH) with code 0x06000000, whose bits 24-31 are the signal (6,
//     SIGABRT) and bits 20-23 the original exception (0, none); its exception address is the
//     PC, so the IP must equal it, inside libsystem_kernel.dylib (base 0x7fff6f40c000);
//   - the module holding the IP of linux-mini and the macOS SEGV is the crashing program the
//     dump names as its main module (crash, crash-client); those offsets are IP minus base;
//   - invalid-parameter.dmp is a well-formed Windows 10 amd64 dump whose exception code is
//     0xC000000D, STATUS_INVALID_PARAMETER (the CRT's invalid parameter handler).
type realDump struct {
	file        string
	os          string
	osVersion   string
	arch        string
	cpus        uint8
	pid         uint32
	threads     int
	modules     int
	reason      string
	address     uint64
	threadID    uint32
	ip          uint64
	module      string
	offset      uint64
	firstModule string
	debugID     string
	debugFile   string
	time        time.Time
}

var realDumps = []realDump{
	{
		file: "test.dmp", os: "Windows NT", osVersion: "5.1.2600 Service Pack 2", arch: "x86", cpus: 1,
		pid: 3932, threads: 2, modules: 13,
		reason: "EXCEPTION_ACCESS_VIOLATION_WRITE", address: 0x45, threadID: 0xbf4,
		ip: 0x40429e, module: "test_app.exe", offset: 0x429e,
		firstModule: `c:\test_app.exe`, debugID: "5A9832E5287241C1838ED98914E9B7FF1", debugFile: "test_app.pdb",
		time: time.Unix(1171480435, 0).UTC(),
	},
	{
		file: "linux-mini.dmp", os: "Linux",
		osVersion: "4.9.60-linuxkit-aufs #1 SMP Mon Nov 6 16:00:12 UTC 2017",
		arch:      "amd64", cpus: 4, pid: 1304, threads: 1, modules: 8,
		reason: "SIGSEGV", address: 0x45, threadID: 0x518,
		ip: 0x401d72, module: "crash", offset: 0x1d72,
		firstModule: "/work/linux/build/crash", debugID: "C0BCC3F19827FE653058404B2831D9E60", debugFile: "crash",
		time: time.Unix(1522061032, 0).UTC(),
	},
	{
		file: "pipeline-inlines-macos-segv.dmp", os: "Mac OS X", osVersion: "11.6.7 20G630", arch: "amd64", cpus: 8,
		pid: 80556, threads: 11, modules: 47,
		reason: "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS", address: 0xffffffff80000042, threadID: 0x1203,
		ip: 0x102a68cd4, module: "crash-client", offset: 0x14cd4,
		firstModule: "/Users/ABeingessner/dev/minidump-pipeline/runs/pipeline-inlines/install/bin/crash-client",
		debugID:     "509C0610949836F7B70BD88BCF03E5400", debugFile: "crash-client",
		time: time.Unix(1659059762, 0).UTC(),
	},
	{
		file: "simple-crashpad.dmp", os: "Mac OS X", osVersion: "10.15.7 19H114", arch: "amd64", cpus: 12,
		pid: 56685, threads: 1, modules: 40,
		reason: "EXC_CRASH / SIGABRT", address: 0x7fff6f41333a, threadID: 0xe272c,
		ip: 0x7fff6f41333a, module: "libsystem_kernel.dylib", offset: 0x7fff6f41333a - 0x7fff6f40c000,
		firstModule: "/Users/ted/src/crashy", debugID: "EF1091E381DA369B9039EA1591D07E0B0", debugFile: "crashy",
		time: time.Unix(1608319181, 0).UTC(),
	},
	{
		file: "invalid-parameter.dmp", os: "Windows NT", osVersion: "10.0.17134", arch: "amd64", cpus: 16,
		pid: 6256, threads: 6, modules: 31,
		reason: "STATUS_INVALID_PARAMETER", address: 0, threadID: 0x1708,
		ip: 0x7ff61bcfa9a3, module: "CrashTest.exe", offset: 0x7a9a3,
		firstModule: `c:\build\CrashTest\x64\Debug\CrashTest.exe`, debugID: "368A7C3A63A644D9BF659B2F4799A1C23", debugFile: "CrashTest.pdb",
		time: time.Unix(1537549246, 0).UTC(),
	},
}

func TestRealDumps(t *testing.T) {
	for _, want := range realDumps {
		t.Run(want.file, func(t *testing.T) {
			d, err := Parse(readDump(t, want.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Notes) != 0 {
				t.Errorf("notes %q, want none", d.Notes)
			}
			if !d.Header.Time.Equal(want.time) {
				t.Errorf("time %v, want %v", d.Header.Time, want.time)
			}
			if d.System == nil {
				t.Fatal("no system info")
			}
			check(t, "OS", d.System.OS(), want.os)
			check(t, "OS version", d.System.OSVersion(), want.osVersion)
			check(t, "CPU arch", d.System.CPUArch(), want.arch)
			check(t, "CPU count", d.System.CPUCount, want.cpus)
			pid, ok := d.ProcessID()
			if !ok {
				t.Error("no process ID")
			}
			check(t, "process ID", pid, want.pid)
			check(t, "threads", len(d.Threads), want.threads)
			check(t, "modules", len(d.Modules), want.modules)
			if len(d.Modules) > 0 {
				m := d.Modules[0]
				check(t, "first module", m.Name, want.firstModule)
				check(t, "debug ID", m.DebugID, want.debugID)
				check(t, "debug file", m.DebugFile, want.debugFile)
			}

			c, notes, err := d.Crash()
			if err != nil {
				t.Fatal(err)
			}
			if len(notes) != 0 {
				t.Errorf("crash notes %q, want none", notes)
			}
			check(t, "reason", c.Reason, want.reason)
			check(t, "address", c.Address, want.address)
			check(t, "thread ID", c.ThreadID, want.threadID)
			check(t, "thread index", c.ThreadIndex, 0)
			if !c.HasIP {
				t.Fatal("no instruction pointer")
			}
			check(t, "IP", c.IP, want.ip)
			if c.Module == nil {
				t.Fatal("IP in no module")
			}
			check(t, "module", c.Module.BaseName(), want.module)
			check(t, "module offset", c.ModuleOffset, want.offset)
		})
	}
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// The two corrupt dumps have directories whose streams point outside the file: each must be
// reported in the notes, and with no readable exception stream there is no crash to describe.
func TestCorruptDumps(t *testing.T) {
	for _, tc := range []struct {
		file  string
		notes int
	}{
		// Directory entries of type 0 (unused) are skipped silently; the others each point
		// past the end of the file.
		{"invalid-range.dmp", 3},
		{"invalid-record-count.dmp", 12},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d, err := Parse(readDump(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Notes) != tc.notes {
				t.Errorf("%d notes %q, want %d", len(d.Notes), d.Notes, tc.notes)
			}
			for _, n := range d.Notes {
				if !strings.Contains(n, ErrTruncated.Error()) {
					t.Errorf("note %q does not say the stream is truncated", n)
				}
			}
			if _, _, err := d.Crash(); !errors.Is(err, ErrNoException) {
				t.Errorf("Crash: %v, want ErrNoException", err)
			}
		})
	}
}

func TestNotMinidump(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		[]byte("MDMP"),
		[]byte("PK\x03\x04 this is a zip file, not a minidump at all"),
		append([]byte("MDMP\x00\x00\x00\x00"), make([]byte, 24)...), // wrong version
	} {
		if _, err := Parse(b); !errors.Is(err, ErrNotMinidump) {
			t.Errorf("Parse(%q): %v, want ErrNotMinidump", b, err)
		}
	}
}

// Every prefix of every real dump is a truncated upload: none may panic, and a prefix that cuts
// the directory must be refused.
func TestTruncatedDumps(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.dmp")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Every length through the header, directory and the first streams; past that a
		// sample, so the test stays fast (the fuzz test covers the rest).
		for n := 0; n < len(b); n++ {
			if n > 4096 && n%61 != 0 {
				continue
			}
			exercise(b[:n:n])
		}
	}
}

// exercise calls everything a processor calls on a dump.
func exercise(b []byte) {
	d, err := Parse(b)
	if err != nil {
		return
	}
	if d.System != nil {
		_, _, _, _ = d.System.OS(), d.System.OSVersion(), d.System.CPUArch(), d.System.CPUInfo()
	}
	_, _ = d.ProcessID()
	for i := range d.Modules {
		_ = d.Modules[i].BaseName()
	}
	c, _, err := d.Crash()
	if err == nil && c.Module != nil {
		_ = c.Module.BaseName()
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.dmp")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, d := range syntheticSeeds() {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		exercise(b)
	})
}
