package minidump

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// le is the byte order of every minidump the clients write (the format has no big-endian form in
// use).
var le = binary.LittleEndian

// location is a MINIDUMP_LOCATION_DESCRIPTOR: a byte range of the file.
type location struct {
	Size uint32
	RVA  uint32
}

func readLocation(b []byte) location {
	return location{Size: le.Uint32(b), RVA: le.Uint32(b[4:])}
}

// at returns the n bytes of data starting at offset off, or ErrTruncated when they are not all in
// the file. Offsets and sizes come from the file, so the sum is done in 64 bits.
func at(data []byte, off, n uint64) ([]byte, error) {
	if off > uint64(len(data)) || n > uint64(len(data))-off {
		return nil, fmt.Errorf("%w: %d bytes at offset %d, file is %d bytes", ErrTruncated, n, off, len(data))
	}
	return data[off : off+n], nil
}

// bytes returns the bytes of data a location descriptor names.
func (l location) bytes(data []byte) ([]byte, error) {
	return at(data, uint64(l.RVA), uint64(l.Size))
}

// maxStringBytes bounds a MINIDUMP_STRING: module paths and service pack names are short, and a
// bound keeps a corrupt length from turning into a large allocation.
const maxStringBytes = 64 << 10

// readString reads the MINIDUMP_STRING at rva: a 32-bit byte length, then that many bytes of
// UTF-16LE text.
func readString(data []byte, rva uint32) (string, error) {
	lb, err := at(data, uint64(rva), 4)
	if err != nil {
		return "", err
	}
	n := le.Uint32(lb)
	if n%2 != 0 || n > maxStringBytes {
		return "", fmt.Errorf("%w: string of %d bytes at offset %d", ErrMalformed, n, rva)
	}
	b, err := at(data, uint64(rva)+4, uint64(n))
	if err != nil {
		return "", err
	}
	u := make([]uint16, n/2)
	for i := range u {
		u[i] = le.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u)), nil
}

// listCount validates the element count at the start of a list stream (thread, module, memory
// lists) against the stream's size and returns the count and the bytes of the entries. Some
// writers pad the 4-byte count to 8 bytes so the entries are 8-byte aligned; such a list is
// recognised by its size being exactly 4 bytes larger than the entries need.
func listCount(stream []byte, entrySize int) (int, []byte, error) {
	if len(stream) < 4 {
		return 0, nil, fmt.Errorf("%w: list stream of %d bytes", ErrTruncated, len(stream))
	}
	n := uint64(le.Uint32(stream))
	room := uint64(len(stream) - 4)
	if n > room/uint64(entrySize) {
		return 0, nil, fmt.Errorf("%w: list of %d entries of %d bytes in a stream of %d bytes", ErrMalformed, n, entrySize, len(stream))
	}
	entries := stream[4:]
	if room == n*uint64(entrySize)+4 {
		entries = stream[8:]
	}
	return int(n), entries, nil
}
