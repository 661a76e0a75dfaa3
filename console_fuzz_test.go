package gridmap

import (
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/console"
)

// FuzzDecodeFigures feeds the decoder of another member's console figures arbitrary bytes: it
// must return an error or figures, never panic, and what it decodes must encode and decode
// again to the same figures.
func FuzzDecodeFigures(f *testing.F) {
	valid, err := msgpack.Marshal(&console.Member{ID: "a", Role: "leader", PartitionsOwned: 3,
		Rates: []float64{1, 2.5}, Maps: []console.Map{{Name: "m", Entries: 2, Ops: map[string]uint64{"put": 2}}},
		Topics: []console.Topic{{Name: "t", Published: 1}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{0xc1})
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}) // a map claiming 4G entries
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeFigures(b)
		if err != nil {
			return
		}
		again, err := msgpack.Marshal(&m)
		if err != nil {
			t.Fatalf("decoded figures do not encode: %v", err)
		}
		m2, err := decodeFigures(again)
		if err != nil {
			t.Fatalf("re-encoded figures do not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(m), normalize(m2)) {
			t.Fatalf("round trip changed the figures:\n%+v\n%+v", m, m2)
		}
	})
}

// normalize makes empty and nil slices and maps alike (msgpack may turn one into the other).
func normalize(m console.Member) console.Member {
	if len(m.Rates) == 0 {
		m.Rates = nil
	}
	m.Rates = slices.Clone(m.Rates)
	for i, r := range m.Rates {
		if math.IsNaN(r) {
			m.Rates[i] = -1 // NaN != NaN: compare NaNs as equal
		}
	}
	if len(m.Maps) == 0 {
		m.Maps = nil
	}
	for i := range m.Maps {
		if len(m.Maps[i].Ops) == 0 {
			m.Maps[i].Ops = nil
		}
	}
	if len(m.Topics) == 0 {
		m.Topics = nil
	}
	if len(m.Queues) == 0 {
		m.Queues = nil
	}
	return m
}
