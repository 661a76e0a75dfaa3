package generator

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Samples of the design's distributions, drawn with a fixed seed, have the design's bounds,
// median, 75th percentile and mean. With n = 200,000 draws a sample quantile is off by well
// under 1% and the sample mean by about 0.3% (the dump sizes' standard deviation is about
// 6 MB), so the tolerances below fail a wrong distribution, not a right one.
func TestSizeDistributions(t *testing.T) {
	const n = 200_000
	for _, tc := range []struct {
		name            string
		sizes           Sizes
		min, max        float64
		median, p75     float64 // 0: not in the design
		mean, meanSlack float64 // 0: not in the design
	}{
		{name: "annotations", sizes: AnnotationSizes, min: 256, max: 20 * kb, median: 1 * kb},
		{name: "dumps", sizes: DumpSizes, min: 200 * kb, max: 20 * mb, median: 500 * kb, p75: 5 * mb, mean: 4 * mb, meanSlack: 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(2026, 12))
			s := make([]float64, n)
			var sum float64
			for i := range s {
				v := tc.sizes.Sample(r)
				s[i] = float64(v)
				sum += float64(v)
			}
			slices.Sort(s)
			if s[0] < tc.min || s[n-1] > tc.max {
				t.Errorf("range %v..%v, want within %v..%v", s[0], s[n-1], tc.min, tc.max)
			}
			// The extremes are reached: the smallest draw is near the minimum, the largest
			// near the maximum.
			if s[0] > tc.min*1.01 || s[n-1] < tc.max*0.99 {
				t.Errorf("range %v..%v does not reach %v..%v", s[0], s[n-1], tc.min, tc.max)
			}
			near := func(what string, got, want, slack float64) {
				if math.Abs(got-want) > slack*want {
					t.Errorf("%s %.0f, want %.0f ±%.0f%%", what, got, want, slack*100)
				}
			}
			near("median", s[n/2], tc.median, 0.02)
			if tc.p75 != 0 {
				near("75th percentile", s[n*3/4], tc.p75, 0.03)
			}
			if tc.mean != 0 {
				near("mean", sum/n, tc.mean, tc.meanSlack)
				near("sample mean against the exact mean", sum/n, tc.sizes.Mean(), 0.02)
			}
		})
	}
}

func TestQuantileEnds(t *testing.T) {
	for p, want := range map[float64]int64{-1: 200 * kb, 0: 200 * kb, 0.5: 500 * kb, 0.75: 5 * mb, 1: 20 * mb, 2: 20 * mb, math.NaN(): 200 * kb} {
		if got := DumpSizes.Quantile(p); got != want {
			t.Errorf("Quantile(%v) = %d, want %d", p, got, want)
		}
	}
}

func TestNewSizesRejects(t *testing.T) {
	for _, pts := range [][]Point{
		nil,
		{{0, 1}},
		{{0.1, 1}, {1, 2}},
		{{0, 1}, {0.9, 2}},
		{{0, 2}, {1, 1}},
		{{0, 0}, {1, 1}},
		{{0, 1}, {0.5, 2}, {0.5, 3}, {1, 4}},
		{{0, 1}, {1, math.Inf(1)}},
	} {
		if _, err := NewSizes(pts...); err == nil {
			t.Errorf("NewSizes(%v) accepted", pts)
		}
	}
}
