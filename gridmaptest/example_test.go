package gridmaptest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/gridmaptest"
)

// A test of an application's code against a real three-member cluster: write through one
// member, crash another, and read everything back after the failover. (An example cannot
// receive a *testing.T, so it hands a test function to testing.Benchmark, which runs it once
// with a *testing.B; in a real test, take the *testing.T you are given.)
func ExampleNewCluster() {
	test := func(t testing.TB) {
		c := gridmaptest.NewCluster(t, 3)
		ctx := context.Background()
		counts, err := gridmap.GetMap[string, int](c.Member(0), "counts")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := counts.Put(ctx, fmt.Sprint("key-", i), i); err != nil {
				t.Fatal(err)
			}
		}

		c.Kill(2)    // a crash: no hand-off
		c.WaitSafe() // the backups of its partitions took over

		after, err := gridmap.GetMap[string, int](c.Member(1), "counts")
		if err != nil {
			t.Fatal(err)
		}
		size, err := after.Size(ctx)
		fmt.Println("entries after the crash:", size, err)
	}
	testing.Benchmark(func(b *testing.B) {
		test(b)
		for b.Loop() {
		}
	})
	// Output:
	// entries after the crash: 100 <nil>
}
