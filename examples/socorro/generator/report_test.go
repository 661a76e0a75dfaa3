package generator

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/collector"
	"github.com/gridmap/gridmap/examples/socorro/processor"
)

// A generated report has the drawn sizes, and the collector and the processor take it like a
// real client's: the padded dump is processed as the real dump it starts with.
func TestReportRoundTrip(t *testing.T) {
	base, err := os.ReadFile("../minidump/testdata/linux-mini.dmp")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i, sizes := range [][2]int64{{256, 200 * kb}, {1 * kb, 300 * kb}, {20 * kb, 600 * kb}, {10, 10}} {
		rep, err := NewReport(r, base, sizes[0], sizes[1])
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(rep.Annotations)
		// The fixed annotations fit in the smallest drawn size (256 B), so every drawn size is
		// met exactly; a smaller request gets just the fixed annotations.
		jsonOK := int64(len(j)) == sizes[0]
		if sizes[0] < 256 {
			jsonOK = len(j) < 256 && rep.Annotations[fillerKey] == ""
		}
		wantDump := max(sizes[1], int64(len(base)))
		if !jsonOK || int64(len(rep.Dump)) != wantDump || !bytes.Equal(rep.Dump[:len(base)], base) {
			t.Errorf("report %d: JSON %d bytes (want %d), dump %d bytes (want %d)", i, len(j), sizes[0], len(rep.Dump), wantDump)
		}
		for _, asJSON := range []bool{false, true} {
			for _, gz := range []bool{false, true} {
				ct, body, err := Encode(rep, asJSON, gz)
				if err != nil {
					t.Fatal(err)
				}
				h := http.Header{"Content-Type": {ct}}
				if gz {
					h.Set("Content-Encoding", "gzip")
				}
				s, err := collector.Parse(h, int64(len(body)), bytes.NewReader(body), collector.DefaultMaxBytes)
				if err != nil {
					t.Fatalf("report %d json=%v gzip=%v: %v", i, asJSON, gz, err)
				}
				if len(s.Annotations) != len(rep.Annotations) || s.Annotations["ProductName"] != rep.Annotations["ProductName"] ||
					!bytes.Equal(s.Dumps["upload_file_minidump"], rep.Dump) {
					t.Errorf("report %d json=%v gzip=%v: parsed back differently", i, asJSON, gz)
				}
			}
		}
		c := processor.Process(&processor.Raw{ID: "x", Submitted: time.Now(), Annotations: rep.Annotations,
			Dumps: map[string][]byte{processor.MainDump: rep.Dump}}, nil, time.Now())
		if c.Signature != "crash@0x1d72" || c.MinidumpStatus != processor.StatusOK {
			t.Errorf("report %d: processed as %q %s %q", i, c.Signature, c.MinidumpStatus, c.Notes)
		}
	}
}
