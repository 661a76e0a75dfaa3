package engine

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/msgpackcheck"
	"github.com/gridmap/gridmap/internal/writebehind"
	"github.com/gridmap/gridmap/listener"
)

// The engine's rare messages (copies of write-behind queues, listener registrations and events,
// initial loads, transaction commits) travel as msgpack structs: each has one encoder and one
// reader here. Readers check the input first (msgpackcheck), so that a corrupt length cannot
// make the decoder allocate what it declares, and refuse it with ErrBadRequest.

// marshalMsg encodes a message struct.
func marshalMsg(v any, what string) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %s: %v", ErrCodec, what, err)
	}
	return b, nil
}

// unmarshalMsg decodes a message struct from a peer.
func unmarshalMsg(b []byte, v any, what string) error {
	if err := msgpackcheck.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: undecodable %s: %v", ErrBadRequest, what, err)
	}
	return nil
}

// queueChunk carries part of a write-behind queue in a partition copy.
type queueChunk struct {
	Part  int32                `msgpack:"p"`
	Epoch uint64               `msgpack:"e"`
	From  string               `msgpack:"f"` // the sending owner
	Map   string               `msgpack:"m"`
	Snap  writebehind.Snapshot `msgpack:"s"`
}

func encodeQueueChunk(c *queueChunk) ([]byte, error) { return marshalMsg(c, "queue chunk") }

func decodeQueueChunk(b []byte) (queueChunk, error) {
	var c queueChunk
	err := unmarshalMsg(b, &c, "queue chunk")
	return c, err
}

// loadRequest gives a member the stored keys of partitions it owns, to load them.
type loadRequest struct {
	Map   string             `msgpack:"m"`
	Epoch uint64             `msgpack:"e"`
	Parts map[int32][][]byte `msgpack:"p"`
}

func encodeLoadRequest(r *loadRequest) ([]byte, error) { return marshalMsg(r, "load request") }

func decodeLoadRequest(b []byte) (loadRequest, error) {
	var r loadRequest
	err := unmarshalMsg(b, &r, "load request")
	return r, err
}

// regSpec is one cluster-wide registration as it travels between members.
type regSpec struct {
	ID     string `msgpack:"i"`
	Map    string `msgpack:"m"`
	HasKey bool   `msgpack:"h,omitempty"`
	Key    []byte `msgpack:"k,omitempty"`
	Pred   string `msgpack:"p,omitempty"`
	Arg    []byte `msgpack:"a,omitempty"`
	Values bool   `msgpack:"v,omitempty"`
}

// regsMsg is a registrant's complete list of registrations.
type regsMsg struct {
	From    string    `msgpack:"f"`
	Version uint64    `msgpack:"n"`
	Regs    []regSpec `msgpack:"r"`
}

func encodeRegs(m *regsMsg) ([]byte, error) { return marshalMsg(m, "listener registrations") }

func decodeRegs(b []byte) (regsMsg, error) {
	var m regsMsg
	err := unmarshalMsg(b, &m, "listener registrations")
	return m, err
}

// wireEvent is one event (or, with Kind Overflow, a notice alone) for one registration.
type wireEvent struct {
	Reg    string        `msgpack:"r"`
	Kind   listener.Kind `msgpack:"k"`
	Key    []byte        `msgpack:"y,omitempty"`
	Part   int32         `msgpack:"p"`
	Member string        `msgpack:"o"`
	Seq    uint64        `msgpack:"s"`
	Old    []byte        `msgpack:"a,omitempty"`
	New    []byte        `msgpack:"b,omitempty"`
	// Missed is the number of events of Reg dropped just before this one.
	Missed uint64 `msgpack:"x,omitempty"`
}

// eventsMsg is a batch of events for the registrations of one member.
type eventsMsg struct {
	From   string      `msgpack:"f"`
	Events []wireEvent `msgpack:"e"`
}

func encodeEvents(m *eventsMsg) ([]byte, error) { return marshalMsg(m, "events") }

func decodeEvents(b []byte) (eventsMsg, error) {
	var m eventsMsg
	err := unmarshalMsg(b, &m, "events")
	return m, err
}

// txRead is a version the commit validates: the record's sequence number when the transaction
// first touched it (0: absent).
type txRead struct {
	Map     string `msgpack:"m"`
	Key     []byte `msgpack:"k"`
	Version uint64 `msgpack:"v"`
}

type txWrite struct {
	Map    string `msgpack:"m"`
	Key    []byte `msgpack:"k"`
	Delete bool   `msgpack:"d,omitempty"`
	Value  []byte `msgpack:"v,omitempty"`
	TTL    int64  `msgpack:"t,omitempty"`
}

type txCommit struct {
	Reads  []txRead  `msgpack:"r"`
	Writes []txWrite `msgpack:"w"`
}

func encodeTxCommit(c *txCommit) ([]byte, error) { return marshalMsg(c, "transaction") }

func decodeTxCommit(b []byte) (txCommit, error) {
	var c txCommit
	err := unmarshalMsg(b, &c, "transaction")
	return c, err
}

// restoreRequest asks a member about its data folder's copy of a partition: its mark
// (msgRestoreMark), or a page of its entries of life Life after Cursor (msgRestoreFetch).
type restoreRequest struct {
	Part   int32  `msgpack:"p"`
	Life   uint64 `msgpack:"l,omitempty"`
	Cursor []byte `msgpack:"c,omitempty"`
	Max    int    `msgpack:"x,omitempty"`
}

func encodeRestoreRequest(r *restoreRequest) ([]byte, error) {
	return marshalMsg(r, "restore request")
}

func decodeRestoreRequest(b []byte) (restoreRequest, error) {
	var r restoreRequest
	err := unmarshalMsg(b, &r, "restore request")
	return r, err
}

// restoreMark is a member's answer to msgRestoreMark: the mark of its newest complete copy (none
// when Part is -1), its folder's ID ("" without a folder) and the folders it remembers.
type restoreMark struct {
	Has        bool     `msgpack:"h"`
	Life       uint64   `msgpack:"l"`
	Epoch      uint64   `msgpack:"e"`
	Seq        uint64   `msgpack:"s"`
	Owner      bool     `msgpack:"o"`
	Folder     string   `msgpack:"f,omitempty"`
	Remembered []string `msgpack:"r,omitempty"`
}

func encodeRestoreMark(r *restoreMark) ([]byte, error) { return marshalMsg(r, "restore mark") }

func decodeRestoreMark(b []byte) (restoreMark, error) {
	var r restoreMark
	err := unmarshalMsg(b, &r, "restore mark")
	return r, err
}

// restoreEntry is one entry of a copy in a data folder.
type restoreEntry struct {
	Map      string `msgpack:"m"`
	Key      []byte `msgpack:"k"`
	Value    []byte `msgpack:"v"`
	ExpireAt int64  `msgpack:"x,omitempty"`
}

// restorePage is a member's answer to msgRestoreFetch.
type restorePage struct {
	Entries []restoreEntry `msgpack:"e"`
	Next    []byte         `msgpack:"n,omitempty"`
	More    bool           `msgpack:"m,omitempty"`
}

func encodeRestorePage(r *restorePage) ([]byte, error) { return marshalMsg(r, "restore page") }

func decodeRestorePage(b []byte) (restorePage, error) {
	var r restorePage
	err := unmarshalMsg(b, &r, "restore page")
	return r, err
}
