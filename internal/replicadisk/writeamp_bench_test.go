package replicadisk

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkFolderWrites measures what a folder writes to disk per byte of value it is given,
// with incompressible values (crash dumps, images, already-compressed data) in the pattern of
// the Socorro demo: new keys, a third of them later overwritten and a third deleted (a TTL's
// unpersist). It reports the process's written bytes (/proc/self/io wchar: the log, the tables
// and the blob files, flushes and compactions included, after the folder has flushed and its
// compactions have settled) per value byte, and the folder's size per byte of live value.
func BenchmarkFolderWrites(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("value=%d", size), func(b *testing.B) {
			d, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			values := make([][]byte, 16)
			for i := range values {
				values[i] = make([]byte, size)
				for j := 0; j+8 <= size; j += 8 {
					v := rng.Uint64()
					for k := range 8 {
						values[i][j+k] = byte(v >> (8 * k))
					}
				}
			}
			before := wchar(b)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := range b.N {
				batch := d.Batch(uint32(i%271), 1)
				key := strconv.Itoa(i)
				batch.Set(Entry{Map: "crashes", Key: []byte(key), Value: values[i%len(values)]})
				switch {
				case i%3 == 1 && i >= 3: // an overwrite of an earlier key
					batch.Set(Entry{Map: "crashes", Key: []byte(strconv.Itoa(i - 3)), Value: values[(i+1)%len(values)]})
				case i%3 == 2 && i >= 6: // a delete of an earlier key
					batch.Delete("crashes", []byte(strconv.Itoa(i-6)))
				}
				batch.SetMark(Mark{Epoch: 1, Seq: uint64(i)})
				if err := batch.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			if err := d.db.Flush(); err != nil {
				b.Fatal(err)
			}
			for deadline := time.Now().Add(time.Minute); d.db.Metrics().Compact.NumInProgress > 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			b.StopTimer()
			written := wchar(b) - before
			logical := float64(b.N) * float64(size) * 4 / 3 // the values of the sets and the overwrites
			b.ReportMetric(float64(written)/logical, "disk-B/B")
			live := float64(b.N-b.N/3) * float64(size) // a third of the keys are deleted
			b.ReportMetric(float64(d.db.Metrics().DiskSpaceUsage())/live, "space-B/B")
		})
	}
}

// wchar is the bytes this process has written with write system calls (/proc/self/io).
func wchar(b *testing.B) uint64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "wchar: "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	b.Skip("no wchar in /proc/self/io")
	return 0
}
