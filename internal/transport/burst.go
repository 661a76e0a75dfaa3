package transport

import "sync"

// burstKey is the context key under which the handlers of a server connection find its burst.
type burstKey struct{}

// maxBurstConns bounds the client connections a burst keeps buffers for between bursts.
const maxBurstConns = 8

// burst holds, while a server connection's reader serves requests that arrived together, the
// requests its handlers start with Client.CallAsync (an owner's backups, typically): one buffer
// per client connection, each written in one system call when the burst ends, instead of one
// write per request. The reader ends the burst before it may block, so a request never waits
// for anything but the reader finishing the frames already in its buffer.
type burst struct {
	mu     sync.Mutex
	active bool
	out    []burstOut // buffers by connection, reused from burst to burst
}

type burstOut struct {
	cc  *clientConn
	buf []byte
}

// begin starts holding requests.
func (b *burst) begin() {
	b.mu.Lock()
	b.active = true
	b.mu.Unlock()
}

// add appends the request frame f for cc and reports true, or reports false when no burst is
// under way.
func (b *burst) add(cc *clientConn, f Frame) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		return false
	}
	for i := range b.out {
		if b.out[i].cc == cc {
			b.out[i].buf = AppendFrame(b.out[i].buf, f)
			return true
		}
	}
	b.out = append(b.out, burstOut{cc: cc, buf: AppendFrame(nil, f)})
	return true
}

// end stops holding requests and writes the ones held. Only the reader calls begin and end,
// so once active is cleared nobody else touches out.
func (b *burst) end() {
	b.mu.Lock()
	b.active = false
	b.mu.Unlock()
	for i := range b.out {
		o := &b.out[i]
		if len(o.buf) > 0 {
			o.cc.writeHeld(o.buf)
			o.buf = o.buf[:0]
		}
		if cap(o.buf) > batchSize {
			o.buf = nil
		}
	}
	if len(b.out) > maxBurstConns {
		b.out = nil
	}
}
