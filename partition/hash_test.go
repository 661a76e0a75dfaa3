package partition

import (
	"fmt"
	"hash/fnv"
	"testing"
)

func TestOfFixedVectors(t *testing.T) {
	// These values are part of the on-disk and on-wire contract: changing
	// them moves every entry of every cluster.
	tests := []struct {
		key   string
		count int
		want  ID
	}{
		{"", 271, ID(14695981039346656037 % 271)},
		{"a", 271, ID(0xaf63dc4c8601ec8c % 271)},
		{"foobar", 271, ID(0x85944171f73967e8 % 271)},
		{"a", 1, 0},
		{"foobar", 1024, ID(0x85944171f73967e8 % 1024)},
	}
	for _, tc := range tests {
		if got := Of([]byte(tc.key), tc.count); got != tc.want {
			t.Errorf("Of(%q, %d) = %d, want %d", tc.key, tc.count, got, tc.want)
		}
	}
}

func TestOfMatchesStdlibFNV1a(t *testing.T) {
	for i := range 1000 {
		key := []byte(fmt.Sprintf("crash-report-%d", i))
		h := fnv.New64a()
		h.Write(key)
		if got, want := Of(key, DefaultCount), ID(h.Sum64()%DefaultCount); got != want {
			t.Fatalf("Of(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestOfSpread(t *testing.T) {
	const keys = 271 * 400
	counts := make([]int, DefaultCount)
	for i := range keys {
		p := Of([]byte(fmt.Sprintf("%08x-report", i)), DefaultCount)
		if p < 0 || int(p) >= DefaultCount {
			t.Fatalf("partition %d out of range", p)
		}
		counts[p]++
	}
	mean := keys / DefaultCount
	for p, n := range counts {
		// 400 expected per partition; 5 standard deviations is +-100.
		if n < mean-100 || n > mean+100 {
			t.Errorf("partition %d got %d keys, want %d +- 100", p, n, mean)
		}
	}
}

func TestOfPanicsOnBadCount(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Of with count 0 did not panic")
		}
	}()
	Of([]byte("k"), 0)
}

func BenchmarkOf(b *testing.B) {
	key := []byte("crash-report-7f3a9c2e-1b4d-4e8f-9a6b-0c5d2e8f1a3b")
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		Of(key, DefaultCount)
	}
}
