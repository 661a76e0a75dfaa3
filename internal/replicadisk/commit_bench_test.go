package replicadisk

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkCommit measures what one applied write costs the folder on the write's path: a
// batch of one entry and the copy's mark, committed (without sync) as persist does, from one
// goroutine (a partition's writes are serialised) and from several partitions at once.
func BenchmarkCommit(b *testing.B) {
	for _, size := range []int{256, 64 << 10, 1 << 20} {
		for _, parallel := range []bool{false, true} {
			b.Run(fmt.Sprintf("value=%d/parallel=%v", size, parallel), func(b *testing.B) {
				d, err := Open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				value := make([]byte, size)
				commit := func(part uint32, i uint64) {
					batch := d.Batch(part, 1)
					batch.Set(Entry{Map: "m", Key: fmt.Appendf(nil, "k%d", i%256), Value: value})
					batch.SetMark(Mark{Epoch: 1, Seq: i})
					if err := batch.Commit(); err != nil {
						b.Error(err)
					}
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				if !parallel {
					for i := range uint64(b.N) {
						commit(0, i)
					}
					return
				}
				var parts atomic.Uint32
				b.RunParallel(func(pb *testing.PB) {
					part := parts.Add(1) // a partition per goroutine
					for i := uint64(0); pb.Next(); i++ {
						commit(part, i)
					}
				})
			})
		}
	}
}
