// Package msgpackcheck guards msgpack decoding of untrusted bytes (frames from other members,
// gossip metadata, stored values) against length prefixes that promise more than the input
// holds. vmihailenco/msgpack/v5 allocates a slice, map or string of the length a prefix
// declares before reading its elements (v5.4.1 preallocates slices whatever its allocation
// limit says), so a 30-byte header declaring two billion elements made a member allocate
// gigabytes. Valid walks the encoding without allocating and refuses any such prefix; Unmarshal
// is msgpack.Unmarshal behind it.
package msgpackcheck

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// ErrMalformed is returned for input whose encoding is truncated or declares more elements or
// bytes than it holds.
var ErrMalformed = errors.New("msgpack: malformed input")

// Unmarshal decodes data into v as msgpack.Unmarshal does, after Valid accepted it.
func Unmarshal(data []byte, v any) error {
	if err := Valid(data); err != nil {
		return err
	}
	return msgpack.Unmarshal(data, v)
}

// Valid reports whether data starts with one complete msgpack value whose every length prefix
// fits in the bytes that follow it (every element of an array or map takes at least one byte).
// Bytes after that value are not looked at, as msgpack.Unmarshal ignores them.
func Valid(data []byte) error {
	b := data
	pending := 1 // values still to read
	for pending > 0 {
		if len(b) == 0 {
			return fmt.Errorf("%w: truncated at byte %d", ErrMalformed, len(data))
		}
		c := b[0]
		b = b[1:]
		pending--
		var skip, elems uint64 // bytes to skip, values to read
		// A length prefix of lenSize bytes, counting bytes (plus extra) or, with counts,
		// elements (times per: 2 for a map's keys and values).
		lenSize, counts, per, extra := 0, false, uint64(1), uint64(0)
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		case c >= 0x80 && c <= 0x8f: // fixmap
			elems = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f: // fixarray
			elems = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf: // fixstr
			skip = uint64(c & 0x1f)
		case c == 0xc4, c == 0xd9: // bin8, str8
			lenSize = 1
		case c == 0xc5, c == 0xda: // bin16, str16
			lenSize = 2
		case c == 0xc6, c == 0xdb: // bin32, str32
			lenSize = 4
		case c == 0xc7, c == 0xc8, c == 0xc9: // ext8, ext16, ext32: length, type, data
			lenSize, extra = 1<<(c-0xc7), 1
		case c == 0xca, c == 0xce, c == 0xd2: // float32, uint32, int32
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3: // float64, uint64, int64
			skip = 8
		case c == 0xcc, c == 0xd0: // uint8, int8
			skip = 1
		case c == 0xcd, c == 0xd1: // uint16, int16
			skip = 2
		case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16: type, data
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc, c == 0xdd: // array16, array32
			lenSize, counts = 2<<(c-0xdc), true
		case c == 0xde, c == 0xdf: // map16, map32
			lenSize, counts, per = 2<<(c-0xde), true, 2
		default: // 0xc1, never used
			return fmt.Errorf("%w: byte 0x%02x at %d", ErrMalformed, c, len(data)-len(b)-1)
		}
		if lenSize > 0 {
			n, rest, ok := uintN(b, lenSize)
			if !ok {
				return fmt.Errorf("%w: truncated length at byte %d", ErrMalformed, len(data)-len(b))
			}
			b = rest
			if counts {
				elems = n * per
			} else {
				skip = n + extra
			}
		}
		if skip > uint64(len(b)) {
			return fmt.Errorf("%w: %d bytes declared at byte %d, %d left", ErrMalformed, skip, len(data)-len(b), len(b))
		}
		b = b[skip:]
		if elems > uint64(len(b)) || uint64(pending)+elems > uint64(len(data)) {
			return fmt.Errorf("%w: %d elements declared at byte %d, %d bytes left", ErrMalformed, elems, len(data)-len(b), len(b))
		}
		pending += int(elems)
	}
	return nil
}

// uintN reads an n-byte big-endian length.
func uintN(b []byte, n int) (uint64, []byte, bool) {
	if len(b) < n {
		return 0, b, false
	}
	switch n {
	case 1:
		return uint64(b[0]), b[1:], true
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), b[2:], true
	default:
		return uint64(binary.BigEndian.Uint32(b)), b[4:], true
	}
}
