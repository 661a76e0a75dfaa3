package msgpackcheck

import (
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

type sample struct {
	Name  string
	Tags  []string
	Data  []byte
	Count int64
	Ratio float64
	Small int8
	Big   uint64
	Attrs map[string]any
	When  time.Time
	Ptr   *int
	Ok    bool
	Ints  []int32
}

// Every value the encoder writes is valid, and every strict prefix of it is refused: Valid
// neither rejects good input nor accepts a truncated one.
func TestValidAcceptsEncodingsAndRefusesTheirPrefixes(t *testing.T) {
	long := make([]byte, 70000)
	values := []any{
		nil, true, 0, -1, 127, -33, 300, -300, 70000, -70000, 1 << 40, uint64(1) << 63, 1.5, float32(2.5),
		"", "short", string(make([]byte, 40)), string(make([]byte, 300)), string(long),
		[]byte{}, []byte("x"), make([]byte, 300), long,
		[]int{}, make([]int, 20), make([]int, 70000), map[string]int{}, map[string]int{"a": 1, "b": 2},
		sample{Name: "n", Tags: []string{"a", "b"}, Data: []byte("d"), Count: -5, Ratio: 0.25, Small: -3,
			Big: 1 << 50, Attrs: map[string]any{"k": []any{1, "x", nil}}, When: time.Unix(1700000000, 5), Ok: true,
			Ints: []int32{1, -1 << 31}},
		time.Unix(0, 0), time.Unix(1<<40, 1),
	}
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Valid(b); err != nil {
			t.Errorf("%T %.40v: encoding refused: %v", v, v, err)
		}
		if err := Valid(append(b, 0xc1, 0xc1)); err != nil {
			t.Errorf("%T: trailing bytes after a complete value refused: %v", v, err)
		}
		step := max(1, len(b)/200)
		for n := 0; n < len(b); n += step {
			if err := Valid(b[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%T %.40v: prefix of %d of %d bytes accepted (%v)", v, v, n, len(b), err)
			}
		}
	}
}

// Length prefixes that promise more than the input holds are refused before anything is
// allocated for them (these made msgpack.Unmarshal allocate gigabytes).
func TestValidRefusesOversizedPrefixes(t *testing.T) {
	for _, b := range [][]byte{
		[]byte("\x9500\xa200\x91\x98\xa100\xc6\xff\xff\xff\x7f"), // bin32 of 2 GB in a batch header
		[]byte("\x9900\xc6\xc0\xc0\x8d00000\x8d00000"),
		{0xdd, 0x7f, 0xff, 0xff, 0xff, 0x00},       // array32 of 2^31 elements
		{0xdf, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00}, // map32 of 2^20 pairs
		{0xdb, 0x00, 0x00, 0x01, 0x00, 'a'},        // str32 of 256 bytes
		{0xc9, 0x00, 0x00, 0x10, 0x00, 0x01},       // ext32
		{0xc1},
	} {
		if err := Valid(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: accepted (%v)", b, err)
		}
		var v any
		if err := Unmarshal(b, &v); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: Unmarshal = %v", b, err)
		}
	}
}

// FuzzUnmarshal: whatever the input, Unmarshal either refuses it or decodes it with
// allocations bounded by the input, never panics.
func FuzzUnmarshal(f *testing.F) {
	b, _ := msgpack.Marshal(sample{Name: "n", Tags: []string{"a"}, Attrs: map[string]any{"k": 1}})
	f.Add(b)
	f.Add([]byte{0xdd, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		_ = Unmarshal(data, &s)
		var v any
		_ = Unmarshal(data, &v)
	})
}
