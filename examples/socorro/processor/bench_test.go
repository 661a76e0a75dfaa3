package processor

import (
	"testing"
)

// BenchmarkProcess measures processing a real dump (the macOS one, 116 KB, 47 modules) into a
// processed crash, checksum included.
func BenchmarkProcess(b *testing.B) {
	raw := &Raw{ID: "x", Submitted: submitted, Annotations: map[string]string{"ProductName": "Firefox", "Version": "1"}}
	data, err := readDumpFile("pipeline-inlines-macos-segv.dmp")
	if err != nil {
		b.Fatal(err)
	}
	raw.Dumps = map[string][]byte{MainDump: data}
	rules := DefaultRules()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if c := Process(raw, rules, processed); c.MinidumpStatus != StatusOK {
			b.Fatal(c.MinidumpStatus)
		}
	}
}
