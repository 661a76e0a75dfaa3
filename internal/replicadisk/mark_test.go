package replicadisk

import "testing"

func TestBest(t *testing.T) {
	m := func(life, epoch, seq uint64, owner bool) Mark {
		return Mark{Life: life, Epoch: epoch, Seq: seq, Owner: owner}
	}
	tests := []struct {
		name  string
		cands []Candidate
		want  string
	}{
		{"none", nil, ""},
		{"one", []Candidate{{"a", m(1, 1, 1, false)}}, "a"},
		{"a later life wins over higher epochs", []Candidate{{"a", m(1, 90, 900, true)}, {"b", m(2, 3, 4, false)}}, "b"},
		{"a later owner wins over more writes of an earlier one", []Candidate{{"a", m(1, 5, 101, true)}, {"b", m(1, 6, 100, true)}}, "b"},
		{"more writes within an epoch", []Candidate{{"a", m(1, 6, 100, false)}, {"b", m(1, 6, 101, false)}}, "b"},
		{"the owner's copy between equal marks", []Candidate{{"a", m(1, 6, 100, false)}, {"c", m(1, 6, 100, true)}, {"b", m(1, 6, 100, false)}}, "c"},
		{"the lowest name between identical marks", []Candidate{{"c", m(1, 6, 100, false)}, {"a", m(1, 6, 100, false)}, {"b", m(1, 6, 100, false)}}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Best(tt.cands)
			if ok != (tt.want != "") || got.Member != tt.want {
				t.Fatalf("Best = %q, %v; want %q", got.Member, ok, tt.want)
			}
		})
	}
}

func TestMarkEncoding(t *testing.T) {
	for _, m := range []Mark{{}, {Life: 1, Epoch: 2, Seq: 3, Owner: true}, {Life: ^uint64(0), Epoch: ^uint64(0), Seq: ^uint64(0)}} {
		got, err := decodeMark(m.encode())
		if err != nil || got != m {
			t.Fatalf("decode(encode(%v)) = %v, %v", m, got, err)
		}
	}
	if _, err := decodeMark([]byte{1, 2}); err == nil {
		t.Fatal("a short mark decoded")
	}
}
