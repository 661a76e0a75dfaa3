// Package transport is gridmap's member-to-member wire: framed, multiplexed
// request/response RPC over TCP, sharing one listening port with raft.
//
// # Connections
//
// The first byte a dialer writes on a new connection selects the protocol:
// 'G' for gridmap frames, 'R' for raft. A [Server] accepts both; 'R'
// connections are handed to the raft.StreamLayer returned by
// [Server.RaftLayer]. A connection starting with any other byte is closed.
//
// # Frames
//
// All integers are big-endian:
//
//	uint32 length of everything that follows (<= Config.MaxFrameSize)
//	uint8  kind: 0 request, 1 response, 2 error response
//	uint8  message type (application defined; 0 is reserved)
//	uint64 request id
//	uint32 header length (<= length-14)
//	header (application defined, msgpack by convention)
//	body   (raw bytes: the rest of the frame)
//
// An error response carries no header; its body is a uint16 error code
// followed by the UTF-8 error message. [Client.Call] returns it as a
// *[RemoteError].
//
// # Concurrency
//
// A [Client] keeps two lanes of connections per peer address and spreads calls over a lane's
// connections round-robin: requests of at least 64 KiB go on the bulk lane
// (Config.BulkConnsPerPeer connections, dialed on first use), the others on the small lane
// (Config.ConnsPerPeer), so that a small request and its response never wait behind a large
// body (a connection carries one frame at a time). Each connection has one reader goroutine,
// which matches responses to calls by request id, and one writer goroutine, which drains a
// bounded queue of outgoing frames into a 64 KiB batch buffer (large bodies are written with
// writev, without being copied). A [Server] has one reader and one writer per connection and
// runs requests on worker goroutines, at most Config.MaxInFlight at a time per connection;
// beyond that it stops reading from the connection (back-pressure).
//
// # Fewer system calls and hand-offs
//
// Small frames usually skip the writer goroutine: the sending goroutine writes them itself, and
// senders that arrive while one is writing append their frames for it to write next, so
// concurrent senders share system calls. An [AsyncHandler] serves a request on the reader
// goroutine and answers later through its [Reply], typically from the completion of a
// [Client.CallAsync] it started (an owner waiting for its backups), which saves the hand-offs
// to and from a worker. While a reader serves frames that arrived together (a burst), the
// responses sent meanwhile, the requests its handlers start with CallAsync and the answers
// completions send with [Reply.SendIn] are held per connection and written together when the
// burst ends; a reader ends its burst before it may block.
//
// A handler registered with [InlineRecycling] runs on the reader and gives back the requests it
// keeps nothing of ([Message.Recycle]); the reader reads the next request for it into that
// buffer, so a stream of such requests (backups of small writes) allocates nothing per request.
// [AsyncRecycling] does the same for the TryServe of an AsyncHandler that answers later from
// what it copied or stored (an owner serving reads and small writes).
// Test binaries overwrite a buffer as it is given back, so a byte used afterwards shows.
//
// The frame codec ([ReadFrame], [AppendFrame], [WriteFrame]) is plain code
// with no goroutines, so it can be tested and fuzzed on its own.
package transport
