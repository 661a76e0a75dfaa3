package transport

import "sync"

// burstKey is the context key under which the handlers of a server connection find its Burst.
type burstKey struct{}

// maxBurstConns bounds the client connections a burst keeps buffers for between bursts.
const maxBurstConns = 8

// Burst holds the frames sent while a connection's reader serves frames that arrived together:
// one buffer per connection written to, each written in one system call when the burst ends,
// instead of one write per frame. On a server connection it holds the responses sent on that
// connection (inline or by handlers finishing meanwhile) and the requests handlers start with
// Client.CallAsync (an owner's backups, typically); on a client connection, the responses
// that completions of asynchronous calls send with Reply.SendIn (an owner answering once its
// backups acknowledged). A reader ends its burst before it may block, so a frame never waits
// for anything but the reader finishing the frames already in its buffer.
type Burst struct {
	mu     sync.Mutex
	active bool
	out    []burstOut // buffers by connection, reused from burst to burst
}

type burstOut struct {
	c   *wconn
	buf []byte
}

// begin starts holding requests.
func (b *Burst) begin() {
	b.mu.Lock()
	b.active = true
	b.mu.Unlock()
}

// add appends frame f for connection c and reports true, or reports false when no burst is
// under way (b may be nil).
func (b *Burst) add(c *wconn, f Frame) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		return false
	}
	for i := range b.out {
		if b.out[i].c == c {
			b.out[i].buf = AppendFrame(b.out[i].buf, f)
			return true
		}
	}
	b.out = append(b.out, burstOut{c: c, buf: AppendFrame(nil, f)})
	return true
}

// end stops holding requests and writes the ones held. Only the reader calls begin and end,
// so once active is cleared nobody else touches out.
func (b *Burst) end() {
	b.mu.Lock()
	b.active = false
	b.mu.Unlock()
	for i := range b.out {
		o := &b.out[i]
		if len(o.buf) > 0 {
			o.c.writeHeld(o.buf)
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
