package processor

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	submitted = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	processed = time.Date(2026, 12, 4, 9, 0, 2, 0, time.UTC)
)

func readDump(t *testing.T, name string) []byte {
	t.Helper()
	b, err := readDumpFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readDumpFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("..", "minidump", "testdata", name))
}

func firefox(dumps map[string][]byte) *Raw {
	return &Raw{
		ID:        "de1bb258-cbbf-4589-a673-34f800261204",
		Submitted: submitted,
		Annotations: map[string]string{
			"ProductName": "Firefox", "Version": "128.0", "ReleaseChannel": "release", "BuildID": "20240701094500",
		},
		Dumps: dumps,
	}
}

// The processed crash of each real dump. Reasons, addresses, threads, modules and offsets are
// the minidump package's (checked there against an independent parser); the signature is the
// crashing frame as module@offset, except where a rule applies; the checksums are sha256sum's.
func TestProcessRealDumps(t *testing.T) {
	for _, tc := range []struct {
		file, sum                           string
		status, os, osVersion, arch, reason string
		address, module, offset, ip, sig    string
		thread, cpus                        int
		pid                                 uint32
		notes                               int
	}{
		{file: "test.dmp", sum: "24b0ea7794b2d2523c46c9aea72c03ccbb0ab88ad76d8258d3752c7b71d233ff",
			status: StatusOK, os: "Windows NT", osVersion: "5.1.2600 Service Pack 2", arch: "x86", cpus: 1, pid: 3932,
			reason: "EXCEPTION_ACCESS_VIOLATION_WRITE", address: "0x45", thread: 0,
			module: "test_app.exe", offset: "0x429e", ip: "0x40429e", sig: "test_app.exe@0x429e"},
		{file: "linux-mini.dmp", sum: "ec4b64062545eb9874d25037bf0624c96a49098eed20b595344c72d344381576",
			status: StatusOK, os: "Linux", osVersion: "4.9.60-linuxkit-aufs #1 SMP Mon Nov 6 16:00:12 UTC 2017",
			arch: "amd64", cpus: 4, pid: 1304, reason: "SIGSEGV", address: "0x45", thread: 0,
			module: "crash", offset: "0x1d72", ip: "0x401d72", sig: "crash@0x1d72"},
		{file: "pipeline-inlines-macos-segv.dmp", sum: "9915eb2943ae16e6b6e50cf4bfa5c818032f2c7b3b85e1fa91d5296fad22b707",
			status: StatusOK, os: "Mac OS X", osVersion: "11.6.7 20G630", arch: "amd64", cpus: 8, pid: 80556,
			reason: "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS", address: "0xffffffff80000042", thread: 0,
			module: "crash-client", offset: "0x14cd4", ip: "0x102a68cd4", sig: "crash-client@0x14cd4"},
		// libsystem_kernel.dylib is a prefix frame (abort's pthread_kill lives there); without a
		// stack walk there is no next frame, so it stays alone.
		{file: "simple-crashpad.dmp", sum: "eeac82c333080aa59a5815424b09eeb7f3f223f8fe18b7c50a361bd9c9d75148",
			status: StatusOK, os: "Mac OS X", osVersion: "10.15.7 19H114", arch: "amd64", cpus: 12, pid: 56685,
			reason: "EXC_CRASH / SIGABRT", address: "0x7fff6f41333a", thread: 0,
			module: "libsystem_kernel.dylib", offset: "0x733a", ip: "0x7fff6f41333a", sig: "libsystem_kernel.dylib@0x733a"},
		{file: "invalid-parameter.dmp", sum: "5edaec6b6d8e360c8f26c5907d3ccb29d79cfd4c66d617b23005a2f1396aff9b",
			status: StatusOK, os: "Windows NT", osVersion: "10.0.17134", arch: "amd64", cpus: 16, pid: 6256,
			reason: "STATUS_INVALID_PARAMETER", address: "0x0", thread: 0,
			module: "CrashTest.exe", offset: "0x7a9a3", ip: "0x7ff61bcfa9a3", sig: "CrashTest.exe@0x7a9a3"},
		{file: "invalid-range.dmp", sum: "cf3bafee3cfa229d9d104fa62f05674bb1b2c716bba28eaa1db5c1ff17cce428",
			status: StatusInvalid, thread: -1, sig: sigNoCrashingThread, notes: 3 + 1},
		{file: "invalid-record-count.dmp", sum: "3889bda508182ef1874a1bd4cf8dcbad59d7b2c1d295db5add46cf639019def2",
			status: StatusInvalid, thread: -1, sig: sigNoCrashingThread, notes: 12 + 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c := Process(firefox(map[string][]byte{MainDump: readDump(t, tc.file)}), nil, processed)
			got := []any{c.MinidumpStatus, c.OSName, c.OSVersion, c.CPUArch, c.CPUCount, c.PID, c.Reason, c.Address,
				c.CrashingThread, c.Module, c.ModuleOffset, c.InstructionPointer, c.Signature, len(c.Notes), c.DumpChecksums[MainDump]}
			want := []any{tc.status, tc.os, tc.osVersion, tc.arch, tc.cpus, tc.pid, tc.reason, tc.address,
				tc.thread, tc.module, tc.offset, tc.ip, tc.sig, tc.notes, tc.sum}
			names := []string{"status", "os", "os version", "arch", "cpus", "pid", "reason", "address",
				"thread", "module", "offset", "ip", "signature", "notes", "checksum"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s = %#v, want %#v", names[i], got[i], want[i])
				}
			}
			if t.Failed() {
				t.Logf("notes: %q", c.Notes)
			}
			if c.ID != "de1bb258-cbbf-4589-a673-34f800261204" || c.Product != "Firefox" || c.Version != "128.0" ||
				c.ReleaseChannel != "release" || c.BuildID != "20240701094500" || !c.Submitted.Equal(submitted) || !c.Processed.Equal(processed) {
				t.Errorf("annotation fields: %+v", c)
			}
			// Processing is a function of its input: twice gives the same processed crash.
			again := Process(firefox(map[string][]byte{MainDump: readDump(t, tc.file)}), nil, processed)
			if !reflect.DeepEqual(c, again) {
				t.Error("processing twice gave two different processed crashes")
			}
		})
	}
}

func TestProcessWithoutUsableDump(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dumps  map[string][]byte
		status string
		note   string
	}{
		{"no dumps", nil, StatusNoDump, ""},
		{"only another process's dump", map[string][]byte{"upload_file_minidump_content": []byte("x")}, StatusNoDump, "no upload_file_minidump"},
		{"not a minidump", map[string][]byte{MainDump: []byte("PK\x03\x04 zip")}, StatusInvalid, "not a minidump"},
		{"empty", map[string][]byte{MainDump: {}}, StatusInvalid, "not a minidump"},
	} {
		c := Process(firefox(tc.dumps), nil, processed)
		if c.MinidumpStatus != tc.status || c.Signature != sigNoCrashingThread || c.CrashingThread != -1 {
			t.Errorf("%s: status %s signature %q thread %d", tc.name, c.MinidumpStatus, c.Signature, c.CrashingThread)
		}
		if tc.note != "" && !slices.ContainsFunc(c.Notes, func(n string) bool { return strings.Contains(n, tc.note) }) {
			t.Errorf("%s: notes %q lack %q", tc.name, c.Notes, tc.note)
		}
		if len(c.DumpChecksums) != len(tc.dumps) {
			t.Errorf("%s: checksums %v", tc.name, c.DumpChecksums)
		}
	}
}

func TestProcessNotes(t *testing.T) {
	raw := firefox(nil)
	raw.CollectorNotes = []string{"dump name \"a-b\" sanitised to \"ab\""}
	delete(raw.Annotations, "Version")
	raw.Annotations["BuildID"] = "2024"
	c := Process(raw, nil, processed)
	want := []string{
		`dump name "a-b" sanitised to "ab"`,
		"annotation Version is missing",
		`BuildID "2024" is not 14 digits (YYYYMMDDhhmmss)`,
		"signature: no crashing thread identified",
	}
	if !slices.Equal(c.Notes, want) {
		t.Errorf("notes %q, want %q", c.Notes, want)
	}
	if raw.CollectorNotes[0] != want[0] || len(raw.CollectorNotes) != 1 {
		t.Error("Process changed the raw crash's notes")
	}
}

// A Java crash's signature comes from its JavaStackTrace, even with a minidump.
func TestProcessJava(t *testing.T) {
	raw := firefox(map[string][]byte{MainDump: readDump(t, "test.dmp")})
	raw.Annotations["JavaStackTrace"] = "java.lang.IllegalStateException: Not attached @4f3c2a1b\n" +
		"\tat org.mozilla.gecko.GeckoThread.run(GeckoThread.java:213)\n\tat java.lang.Thread.run(Thread.java:764)\n"
	c := Process(raw, nil, processed)
	want := "java.lang.IllegalStateException: Not attached @<addr>: at org.mozilla.gecko.GeckoThread.run(GeckoThread.java)"
	if c.Signature != want {
		t.Errorf("signature %q, want %q", c.Signature, want)
	}
	if c.Reason != "EXCEPTION_ACCESS_VIOLATION_WRITE" {
		t.Errorf("the dump's fields are still read: reason %q", c.Reason)
	}
}

func TestProcessOOM(t *testing.T) {
	for size, want := range map[string]string{
		"1024":     "OOM | small",
		"262144":   "OOM | small",
		"10485760": "OOM | large | test_app.exe@0x429e",
		"lots":     "OOM | unknown | test_app.exe@0x429e",
	} {
		raw := firefox(map[string][]byte{MainDump: readDump(t, "test.dmp")})
		raw.Annotations["OOMAllocationSize"] = size
		if c := Process(raw, nil, processed); c.Signature != want {
			t.Errorf("OOMAllocationSize %s: %q, want %q", size, c.Signature, want)
		}
	}
}
