package processor

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNativeSignature(t *testing.T) {
	r := DefaultRules()
	for _, tc := range []struct {
		frames []string
		thread bool
		want   string
		notes  int
	}{
		{[]string{"xul.dll@0x1234"}, true, "xul.dll", 0},
		// Prefix frames are kept and the next frame is added; irrelevant ones are skipped;
		// consecutive frames of one DLL collapse.
		{[]string{"ntdll.dll@0x10", "ntdll.dll@0x20", "KERNELBASE.dll@0x30", "firefox.exe@0x40", "x.exe@0x50"}, true,
			"ntdll.dll | KERNELBASE.dll | firefox.exe@0x40", 0},
		{[]string{"@0x7fff0000", "libc.so.6@0x1000", "libxul.so@0x2000", "libxul.so@0x3000"}, true,
			"libc.so.6@0x1000 | libxul.so@0x2000 | libxul.so@0x3000", 0},
		{[]string{"linux-gate.so@0x10", "abort", "raise", "mozilla::dom::Foo::Bar"}, true, "abort | raise | mozilla::dom::Foo::Bar", 0},
		{[]string{"@0x0", "crash@0x1d72"}, true, "@0x0 | crash@0x1d72", 0},
		// Nothing relevant: the first frame stands in.
		{[]string{"@0xdeadbeef"}, true, "@0xdeadbeef", 1},
		{nil, true, sigNoFrames, 1},
		{nil, false, sigNoCrashingThread, 1},
	} {
		sig, notes := r.Native(tc.frames, tc.thread)
		if sig != tc.want || len(notes) != tc.notes {
			t.Errorf("%q: %q %q, want %q with %d notes", tc.frames, sig, notes, tc.want, tc.notes)
		}
	}
}

func TestJavaSignature(t *testing.T) {
	r := DefaultRules()
	for _, tc := range []struct{ trace, want string }{
		{"java.lang.NullPointerException: Attempt to invoke virtual method\n\tat org.mozilla.Foo.bar(Foo.java:12)",
			"java.lang.NullPointerException: Attempt to invoke virtual method at org.mozilla.Foo.bar(Foo.java)"},
		{"java.lang.OutOfMemoryError\n\tat dalvik.system.VMRuntime.newNonMovableArray(Native Method)",
			"java.lang.OutOfMemoryError: at dalvik.system.VMRuntime.newNonMovableArray(Native Method)"},
		{"java.lang.RuntimeException: boom", "java.lang.RuntimeException: boom"},
		{"java.lang.RuntimeException: " + strings.Repeat("x", 300) + "\n\tat a.B.c(B.java:1)", "java.lang.RuntimeException: at a.B.c(B.java)"},
		{"   \n", sigJavaBadFormat},
		{":", sigJavaBadFormat}, // found by FuzzProcess
	} {
		if sig, _ := r.Java(tc.trace); sig != tc.want {
			t.Errorf("%.40q: %q, want %q", tc.trace, sig, tc.want)
		}
	}
}

func TestSignatureTruncated(t *testing.T) {
	r := DefaultRules()
	long := strings.Repeat("é", 200) // 400 bytes
	sig, notes := r.decorate(long, nil)
	if len(sig) > 255 || !strings.HasSuffix(sig, "...") || !utf8.ValidString(sig) || len(notes) != 1 {
		t.Errorf("%d bytes, valid %v, notes %q", len(sig), utf8.ValidString(sig), notes)
	}
}

func TestParseRules(t *testing.T) {
	for _, bad := range []string{`{`, `{"max_length": 255, "prefix": ["("]}`, `{"max_length": 3}`} {
		if _, err := ParseRules([]byte(bad)); !errors.Is(err, ErrInvalidRules) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	r, err := ParseRules([]byte(`{"max_length": 64}`))
	if err != nil {
		t.Fatal(err)
	}
	if sig, _ := r.Native([]string{"libc.so.6@0x1", "a@0x2"}, true); sig != "libc.so.6@0x1" {
		t.Errorf("rules without lists: %q", sig)
	}
}

func FuzzProcess(f *testing.F) {
	f.Add([]byte("MDMP\x93\xa7\x00\x00"), "java.lang.X: y\n\tat a.b(C.java:1)", "100")
	f.Add([]byte{}, "", "")
	r := DefaultRules()
	f.Fuzz(func(t *testing.T, dump []byte, java, oom string) {
		raw := firefox(map[string][]byte{MainDump: dump})
		if java != "" {
			raw.Annotations["JavaStackTrace"] = java
		}
		if oom != "" {
			raw.Annotations["OOMAllocationSize"] = oom
		}
		c := Process(raw, r, processed)
		if c.Signature == "" || len(c.Signature) > 255 {
			t.Fatalf("signature %q", c.Signature)
		}
	})
}
