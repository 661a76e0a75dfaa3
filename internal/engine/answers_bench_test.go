package engine

import "testing"

// BenchmarkAnswerRemember measures what remembering a write's answer costs the owner and each
// backup (every write with an operation ID pays it once), in a partition's steady state.
func BenchmarkAnswerRemember(b *testing.B) {
	var t answerTable
	t.remember(opID{1, 1}, 1, nil, false, false) // a table as newRecordStore makes it, first use
	b.ReportAllocs()
	for i := uint64(2); b.Loop(); i++ {
		t.remember(opID{1, i}, 1, nil, false, false)
	}
}
