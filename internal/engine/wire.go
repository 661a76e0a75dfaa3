package engine

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"sync/atomic"

	"github.com/gridmap/gridmap/internal/transport"
)

// The wire module: every message the engine sends to another member, with its one appender
// (or encoder) and its one reader, each reader fuzzed (wire_test.go). Messages are msgpack:
//
//	type             carries                                    appender / reader
//	msgOp            operation request (header), value (body)   encodeOpRequest / decodeOpRequest
//	  its answer     operation response                         encodeResponse / decodeResponse
//	msgBackup        replicated mutations (batch)               encodeBatch / decodeBatch
//	msgSyncBegin     a copy starts (batch with a sequence mark)  encodeBatch / decodeBatch
//	msgSyncChunk     part of a copy (batch)                     encodeBatch / decodeBatch
//	msgSyncEnd       the copy is complete (batch)               encodeBatch / decodeBatch
//	msgResyncProbe   a backup's sequence probe (batch)          encodeBatch / decodeBatch
//	msgSyncQueue     write-behind queue entries of a copy       encodeQueueChunk / decodeQueueChunk
//	msgLoad          stored keys to load, by partition          encodeLoadRequest / decodeLoadRequest
//	msgRestoreMark   a data folder's mark of a partition        encodeRestoreRequest / decodeRestoreRequest
//	  its answer                                                encodeRestoreMark / decodeRestoreMark
//	msgRestoreFetch  a page of a data folder's partition copy   encodeRestoreRequest / decodeRestoreRequest
//	  its answer                                                encodeRestorePage / decodeRestorePage
//	msgDiskSync      a flush of data folders (batch)            encodeBatch / decodeBatch
//	msgEvents        cluster-wide listener events               encodeEvents / decodeEvents
//	msgListenerRegs  a member's listener registrations          encodeRegs / decodeRegs
//	msgSyncRegs      registrations carried by a copy            encodeRegs / decodeRegs
//	(in msgOp value) a transaction's commit                     encodeTxCommit / decodeTxCommit
//
// The hot-path headers (requests, responses, batches) are written by hand-written appenders as
// msgpack arrays of their fields, in order, into one right-sized allocation, and read by
// wireReader without a msgpack.Decoder: byte fields alias the header (a received header belongs
// to the receiver and is never reused), and map names and member IDs come from a small intern
// table. The other messages are rare (copies, registrations, loads) and use msgpack structs
// through one encoder and one bounded reader each (wire_msgs.go). Every reader refuses
// malformed input with ErrBadRequest, without allocating what a corrupt length declares.

// Message types of the engine on the member transport.
const (
	msgOp           transport.MsgType = 10 // single-key and per-partition operations
	msgBackup       transport.MsgType = 11 // replicate mutations to a backup or pending member
	msgSyncBegin    transport.MsgType = 12 // a full partition copy starts: empty the partition
	msgSyncChunk    transport.MsgType = 13 // part of a partition copy
	msgSyncEnd      transport.MsgType = 14 // the copy is complete
	msgSyncQueue    transport.MsgType = 15 // part of a copy: write-behind queue entries
	msgLoad         transport.MsgType = 16 // a member's share of a map's initial load
	msgResyncProbe  transport.MsgType = 17 // an owner asks a backup whether it needs a full copy
	msgRestoreMark  transport.MsgType = 18 // a restoring owner asks a member for its copy's mark
	msgRestoreFetch transport.MsgType = 19 // a restoring owner reads a member's copy
	msgDiskSync     transport.MsgType = 23 // an owner's flush: make the partition's copy durable

	msgEvents       transport.MsgType = 20 // owner -> registrant: a batch of cluster-wide listener events
	msgListenerRegs transport.MsgType = 21 // registrant -> every member: its cluster-wide listener registrations
	msgSyncRegs     transport.MsgType = 22 // part of a copy: every member's registrations the sender knows
)

// msgpack type codes (the msgpcode package has them as variables, which cannot be switched on).
const (
	mpPosFixNumHigh byte = 0x7f
	mpFixedArrayLow byte = 0x90
	mpFixedStrLow   byte = 0xa0
	mpNil           byte = 0xc0
	mpFalse         byte = 0xc2
	mpTrue          byte = 0xc3
	mpBin8          byte = 0xc4
	mpBin16         byte = 0xc5
	mpBin32         byte = 0xc6
	mpUint8         byte = 0xcc
	mpUint16        byte = 0xcd
	mpUint32        byte = 0xce
	mpUint64        byte = 0xcf
	mpInt8          byte = 0xd0
	mpInt16         byte = 0xd1
	mpInt32         byte = 0xd2
	mpInt64         byte = 0xd3
	mpStr8          byte = 0xd9
	mpStr16         byte = 0xda
	mpStr32         byte = 0xdb
	mpArray16       byte = 0xdc
	mpArray32       byte = 0xdd
	mpNegFixNumLow  byte = 0xe0
)

// Sizes of msgpack encodings, as the msgpack/v5 encoder chooses them.

func sizeUint(n uint64) int {
	switch {
	case n <= math.MaxInt8:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

func sizeInt(n int64) int {
	switch {
	case n >= 0:
		return sizeUint(uint64(n))
	case n >= -32:
		return 1
	case n >= math.MinInt8:
		return 2
	case n >= math.MinInt16:
		return 3
	case n >= math.MinInt32:
		return 5
	}
	return 9
}

// sizeLen is the size of a str or bin length prefix (fixstr for short strings).
func sizeLen(l int, str bool) int {
	switch {
	case str && l < 32:
		return 1
	case l < 256:
		return 2
	case l <= math.MaxUint16:
		return 3
	}
	return 5
}

func sizeStr(s string) int { return sizeLen(len(s), true) + len(s) }

func sizeBin(b []byte) int {
	if b == nil {
		return 1 // nil
	}
	return sizeLen(len(b), false) + len(b)
}

func sizeArrayLen(l int) int {
	switch {
	case l < 16:
		return 1
	case l <= math.MaxUint16:
		return 3
	}
	return 5
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, mpUint8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpUint16), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, mpUint64), n)
}

func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, mpInt8, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, mpInt16), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(n))
}

func appendLen(b []byte, l int, str bool) []byte {
	switch {
	case str && l < 32:
		return append(b, mpFixedStrLow|byte(l))
	case l < 256:
		c := mpBin8
		if str {
			c = mpStr8
		}
		return append(b, c, byte(l))
	case l <= math.MaxUint16:
		c := mpBin16
		if str {
			c = mpStr16
		}
		return binary.BigEndian.AppendUint16(append(b, c), uint16(l))
	}
	c := mpBin32
	if str {
		c = mpStr32
	}
	return binary.BigEndian.AppendUint32(append(b, c), uint32(l))
}

func appendStr(b []byte, s string) []byte { return append(appendLen(b, len(s), true), s...) }

func appendBin(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, mpNil)
	}
	return append(appendLen(b, len(v), false), v...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

func appendArrayLen(b []byte, l int) []byte {
	switch {
	case l < 16:
		return append(b, mpFixedArrayLow|byte(l))
	case l <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpArray16), uint16(l))
	}
	return binary.BigEndian.AppendUint32(append(b, mpArray32), uint32(l))
}

// wireReader reads the msgpack forms the appenders write. Every method reports false for
// anything else (including truncation), and the message's reader then refuses it.
type wireReader struct {
	b []byte
}

func (r *wireReader) byte() (byte, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, true
}

// fixed reads an n-byte big-endian unsigned number.
func (r *wireReader) fixed(n int) (uint64, bool) {
	if len(r.b) < n {
		return 0, false
	}
	var v uint64
	for _, c := range r.b[:n] {
		v = v<<8 | uint64(c)
	}
	r.b = r.b[n:]
	return v, true
}

func (r *wireReader) arrayLen() (int, bool) {
	c, ok := r.byte()
	switch {
	case !ok:
		return 0, false
	case c >= mpFixedArrayLow && c <= mpFixedArrayLow|0x0f:
		return int(c & 0x0f), true
	case c == mpArray16:
		n, ok := r.fixed(2)
		return int(n), ok
	case c == mpArray32:
		n, ok := r.fixed(4)
		return int(n), ok
	}
	return 0, false
}

// uint reads an unsigned number (positive fixint or uint 8 to 64).
func (r *wireReader) uint() (uint64, bool) {
	c, ok := r.byte()
	switch {
	case !ok:
		return 0, false
	case c <= mpPosFixNumHigh:
		return uint64(c), true
	case c >= mpUint8 && c <= mpUint64:
		return r.fixed(1 << (c - mpUint8))
	}
	return 0, false
}

// int reads a signed number: any integer form whose value fits an int64.
func (r *wireReader) int() (int64, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	switch {
	case c >= mpNegFixNumLow: // negative fixint
		r.b = r.b[1:]
		return int64(int8(c)), true
	case c >= mpInt8 && c <= mpInt64:
		r.b = r.b[1:]
		size := 1 << (c - mpInt8)
		v, ok := r.fixed(size)
		return int64(v<<(64-8*size)) >> (64 - 8*size), ok // sign-extend
	}
	v, ok := r.uint()
	return int64(v), ok && v <= math.MaxInt64
}

// data reads a str (str true) or bin value, aliasing r's buffer; nil reads as a nil slice.
func (r *wireReader) data(str bool) ([]byte, bool) {
	c, ok := r.byte()
	var n uint64
	switch {
	case !ok:
		return nil, false
	case c == mpNil:
		return nil, true
	case str && c >= mpFixedStrLow && c <= mpFixedStrLow|0x1f:
		n = uint64(c & 0x1f)
	case str && c >= mpStr8 && c <= mpStr32:
		n, ok = r.fixed(1 << (c - mpStr8))
	case !str && c >= mpBin8 && c <= mpBin32:
		n, ok = r.fixed(1 << (c - mpBin8))
	default:
		return nil, false
	}
	if !ok || n > uint64(len(r.b)) {
		return nil, false
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, true
}

func (r *wireReader) bool() (bool, bool) {
	c, ok := r.byte()
	switch {
	case ok && c == mpTrue:
		return true, true
	case ok && c == mpFalse:
		return false, true
	}
	return false, false
}

// bytes reads a bin value. Like msgpack's DecodeBytes, an empty value reads as an empty non-nil
// slice and nil as nil.
func (r *wireReader) bytes() ([]byte, bool) { return r.data(false) }

// str reads a string into a new string.
func (r *wireReader) str() (string, bool) {
	v, ok := r.data(true)
	return string(v), ok
}

// name reads a string that recurs across messages (a map name, a member ID) through names.
func (r *wireReader) name() (string, bool) {
	v, ok := r.data(true)
	return names.intern(v), ok
}

// internTable maps the bytes of strings that recur in nearly every message (map names, member
// IDs, processor names) to one shared string, so that decoding them does not allocate. It is
// direct-mapped and lock-free: a string evicts whatever shared its slot, so the table stays
// bounded whatever names arrive, and a miss costs only the allocation decoding always did.
type internTable struct {
	seed  maphash.Seed
	slots [256]atomic.Pointer[string]
}

// maxInterned is the longest string interned; longer ones are unlikely to be names.
const maxInterned = 64

var names = internTable{seed: maphash.MakeSeed()}

func (t *internTable) intern(b []byte) string {
	if len(b) == 0 || len(b) > maxInterned {
		return string(b)
	}
	slot := &t.slots[maphash.Bytes(t.seed, b)%uint64(len(t.slots))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
