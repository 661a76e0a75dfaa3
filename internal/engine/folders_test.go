package engine

import (
	"slices"
	"testing"
)

func TestMissingFolders(t *testing.T) {
	const a, b, c = "000000000000000a", "000000000000000b", "000000000000000c"
	for _, tc := range []struct {
		name                string
		present, remembered []string
		want                []string
	}{
		{"new folders remember nothing", []string{a, b}, nil, nil},
		{"every remembered folder present", []string{c, a, b}, []string{a, b, c, b}, nil},
		{"the last to stop remembers only itself", []string{c, b}, []string{c, b, c}, nil},
		{"one absent", []string{a}, []string{a, b, a}, []string{b}},
		{"two absent, sorted, once each", []string{a, ""}, []string{c, b, a, c, b}, []string{b, c}},
		{"a member without a folder", []string{"", a}, []string{a}, nil},
	} {
		if got := missingFolders(tc.present, tc.remembered); !slices.Equal(got, tc.want) {
			t.Errorf("%s: missingFolders(%v, %v) = %v, want %v", tc.name, tc.present, tc.remembered, got, tc.want)
		}
	}
}
