package collector

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// BenchmarkParse measures parsing one submission with a dump of the design's median (500 KB) and
// 75th percentile (5 MB) sizes, plain and gzipped. The dump is random bytes: the worst case for
// gzip.
func BenchmarkParse(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"500KB", 500 << 10}, {"5MB", 5 << 20}} {
		dumpData := make([]byte, size.n)
		r := rand.New(rand.NewPCG(1, 1))
		for i := range dumpData {
			dumpData[i] = byte(r.Uint32())
		}
		plain := body(b, extra(`{"ProductName":"Firefox","Version":"128.0"}`), dump("upload_file_minidump", dumpData))
		for _, gz := range []bool{false, true} {
			data, enc, name := plain, "", size.name+"/plain"
			if gz {
				data, enc, name = gzipped(b, plain), "gzip", size.name+"/gzip"
			}
			b.Run(name, func(b *testing.B) {
				h := headers(formType, enc)
				b.SetBytes(int64(len(plain)))
				for b.Loop() {
					if _, err := Parse(h, int64(len(data)), bytes.NewReader(data), DefaultMaxBytes); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
