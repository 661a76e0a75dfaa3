package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// batchSize is the size of a connection's write batch buffer; a batch is
	// written when it reaches this size or the queue is empty.
	batchSize = 64 << 10
	// largeBody is the body size from which a body is written with writev
	// instead of being copied into the batch.
	largeBody = 16 << 10
	// bulkFrame is the request frame size from which a Client sends the
	// request on a peer's bulk lane (see peer).
	bulkFrame = 64 << 10
	// readBufferSize is the size of each connection's bufio.Reader.
	readBufferSize = 64 << 10
	// lingerTimeout bounds how long a connection closed after a final error
	// response waits for the peer to read it.
	lingerTimeout = 2 * time.Second
)

var zeroPrefix [PrefixSize]byte

// outFrame is an entry of a connection's write queue.
type outFrame struct {
	f    Frame
	last bool // shut the connection down after writing this frame
	// large, for a request whose body is written without a copy, lets its caller give it up
	// while it is still queued and learn when the writer is done with it.
	large *largeSend
}

// largeSend tracks a queued request whose body the writer reads in place.
type largeSend struct {
	state   atomic.Int32  // largeQueued, largeWriting or largeAbandoned
	written chan struct{} // closed once the writer is done with the body
}

const (
	largeQueued int32 = iota
	largeWriting
	largeAbandoned
)

// wconn is the part of a connection shared by client and server: the net.Conn,
// its bounded write queue drained by a writer goroutine, and shutdown.
type wconn struct {
	nc     net.Conn
	stats  *Stats // nil: not counted
	q      chan outFrame
	dead   chan struct{} // closed by shutdown
	once   sync.Once
	err    error  // why the connection died; set before dead is closed
	onDead func() // run once by shutdown, after dead is closed

	// wmu is held while bytes are written to nc, by the writer goroutine or by a goroutine
	// sending a frame itself (send).
	wmu sync.Mutex
	// closing is set, under wmu, before the writer writes a final frame: nothing may be written
	// after it.
	closing bool
	// direct is send's encoding buffer (guarded by wmu).
	direct []byte
	// busy is set while the writer goroutine holds frames it has not written yet.
	busy atomic.Bool
	// started is set once the writer wrote its preamble: frames may be written directly from
	// then on.
	started atomic.Bool
	// cmu guards the combining of direct writes: flushing is set while a goroutine writes
	// directly, and pend collects the frames of other senders meanwhile (see sendDirect).
	cmu      sync.Mutex
	flushing bool
	pend     []byte
	// heldBy is set while a server connection's reader serves a burst of requests that had
	// already arrived together: sendDirect then adds frames to that Burst instead of writing
	// each, and the reader writes them at once when the burst ends.
	heldBy atomic.Pointer[Burst]
}

func newWconn(nc net.Conn, queue int, stats *Stats) wconn {
	return wconn{nc: nc, q: make(chan outFrame, queue), dead: make(chan struct{}), stats: stats}
}

// shutdown marks the connection dead with cause err and closes it. Only the
// first call has an effect.
func (c *wconn) shutdown(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.dead)
		_ = c.nc.Close()
		if c.onDead != nil {
			c.onDead()
		}
	})
}

func (c *wconn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// enqueue hands f to the writer, blocking while the queue is full until ctx
// ends or the connection dies.
func (c *wconn) enqueue(ctx context.Context, f outFrame) error {
	select {
	case c.q <- f:
		return nil
	default:
	}
	select {
	case c.q <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.dead:
		return c.err
	}
}

// send hands f to the connection like enqueue, except that a small frame is written at once
// by the calling goroutine when the writer goroutine is idle (nothing queued, no batch being
// assembled) and no other goroutine is writing: this saves the hand-off to the writer and back.
// Frames of one connection may thus be written in another order than they were sent, so send
// is only for frames whose relative order does not matter (responses to distinct requests).
func (c *wconn) send(ctx context.Context, f Frame) error {
	if sent, err := c.sendDirect(f, time.Time{}); sent {
		return err
	}
	return c.enqueue(ctx, outFrame{f: f})
}

// sendDirect writes f from the calling goroutine if that is possible now (see send) and
// reports whether it did. Senders combine their writes: while one goroutine is writing
// directly, others append their frames to pend and return, and the writing goroutine writes
// them as well, in one system call per round, before it returns. A non-zero deadline bounds
// the caller's write; a write that fails, including by reaching the deadline (part of a frame
// may have been written), shuts the connection down, except when nothing of a frame of the
// caller's alone was written.
func (c *wconn) sendDirect(f Frame, deadline time.Time) (bool, error) {
	if len(f.Body) >= largeBody {
		return false, nil
	}
	if b := c.heldBy.Load(); b != nil && b.add(c, f) {
		return true, nil
	}
	c.cmu.Lock()
	if c.flushing {
		c.pend = AppendFrame(c.pend, f)
		c.cmu.Unlock()
		return true, nil
	}
	if !c.started.Load() || len(c.q) != 0 || c.busy.Load() {
		c.cmu.Unlock()
		return false, nil
	}
	c.flushing = true
	c.cmu.Unlock()

	c.wmu.Lock()
	if c.closing || c.isDead() {
		c.wmu.Unlock()
		c.endFlush() // frames others appended meanwhile die with the connection
		return false, nil
	}
	c.direct = AppendFrame(c.direct[:0], f)
	if !deadline.IsZero() {
		_ = c.nc.SetWriteDeadline(deadline)
	}
	own := true // c.direct holds the caller's frame only
	var err error
	for {
		var n int
		n, err = c.nc.Write(c.direct)
		c.stats.wrote(n)
		if err != nil {
			if !own || n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
				own = false // the stream is broken, or others' frames are lost
			}
			break
		}
		c.cmu.Lock()
		if len(c.pend) == 0 {
			c.flushing = false
			c.cmu.Unlock()
			break
		}
		c.direct, c.pend = c.pend, c.direct[:0]
		c.cmu.Unlock()
		own = false
	}
	if !deadline.IsZero() {
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	if cap(c.direct) > batchSize {
		c.direct = nil
	}
	c.wmu.Unlock()
	if err != nil {
		// Unless nothing of the caller's lone frame was written (the stream is then intact
		// for the next writer), the connection cannot be trusted any more.
		if lost := c.endFlush(); !own || lost {
			c.shutdown(err)
		}
	}
	return true, err
}

// endFlush ends a combined write that stopped early and reports whether frames other senders
// appended were dropped.
func (c *wconn) endFlush() bool {
	c.cmu.Lock()
	lost := len(c.pend) > 0
	c.pend = c.pend[:0]
	c.flushing = false
	c.cmu.Unlock()
	return lost
}

// writeHeld writes frames held for the connection (see burst). A failed write shuts the
// connection down, which fails the calls whose requests were in b.
func (c *wconn) writeHeld(b []byte) {
	c.wmu.Lock()
	if c.closing || c.isDead() {
		c.wmu.Unlock()
		return
	}
	n, err := c.nc.Write(b)
	c.wmu.Unlock()
	c.stats.wrote(n)
	if err != nil {
		c.shutdown(err)
	}
}

// write writes b to the connection under wmu.
func (c *wconn) write(b []byte) error {
	c.wmu.Lock()
	n, err := c.nc.Write(b)
	c.wmu.Unlock()
	c.stats.wrote(n)
	return err
}

// writeLoop is the connection's writer goroutine: it drains the queue into a
// batch buffer and writes the batch whenever the queue is empty or the batch
// is full. Bodies of at least largeBody bytes are written with writev, without
// copying. preamble is written ahead of the first frame (the protocol byte).
func (c *wconn) writeLoop(preamble []byte) {
	batch := make([]byte, 0, batchSize)
	c.wmu.Lock()
	if len(preamble) > 0 {
		if _, err := c.nc.Write(preamble); err != nil {
			c.wmu.Unlock()
			c.shutdown(err)
			return
		}
	}
	c.started.Store(true)
	c.wmu.Unlock()
	var bufs [2][]byte
	for {
		var of outFrame
		select {
		case of = <-c.q:
		case <-c.dead:
			return
		}
		c.busy.Store(true)
		for {
			if of.large != nil && !of.large.state.CompareAndSwap(largeQueued, largeWriting) {
				// Abandoned by its caller while queued: not a byte of it is written.
				select {
				case of = <-c.q:
					continue
				default:
				}
				break
			}
			f := &of.f
			n := len(batch)
			batch = append(batch, zeroPrefix[:]...)
			putPrefix(batch[n:], f)
			batch = append(batch, f.Header...)
			var err error
			if len(f.Body) >= largeBody {
				bufs[0], bufs[1] = batch, f.Body
				nb := net.Buffers(bufs[:])
				c.wmu.Lock()
				var n int64
				n, err = nb.WriteTo(c.nc)
				c.wmu.Unlock()
				c.stats.wrote(int(n))
				batch = batch[:0]
			} else {
				batch = append(batch, f.Body...)
				if len(batch) >= batchSize {
					err = c.write(batch)
					batch = batch[:0]
				}
			}
			if of.large != nil {
				close(of.large.written)
			}
			bufs[0], bufs[1] = nil, nil
			if err != nil {
				c.shutdown(err)
				return
			}
			if of.last {
				c.wmu.Lock()
				c.closing = true
				if len(batch) > 0 {
					n, _ := c.nc.Write(batch)
					c.stats.wrote(n)
				}
				c.wmu.Unlock()
				c.linger()
				return
			}
			if cap(batch) > 4*batchSize { // a huge header grew it
				batch = make([]byte, 0, batchSize)
			}
			select {
			case of = <-c.q:
				continue
			default:
			}
			// The queue is empty. Let runnable goroutines (callers, handlers)
			// enqueue before paying for a system call: larger batches.
			break
		}
		if len(batch) > 0 {
			err := c.write(batch)
			batch = batch[:0]
			if err != nil {
				c.busy.Store(false)
				c.shutdown(err)
				return
			}
		}
		c.busy.Store(false)
	}
}

// linger closes the write side, discards what the peer still sends for a
// short while (so that closing does not reset the connection before the peer
// read the last frame), then shuts the connection down.
func (c *wconn) linger() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.Copy(io.Discard, c.nc)
	}
	c.shutdown(ErrConnClosed)
}

// errorFrame builds an error response: the body is the code then the message.
func errorFrame(t MsgType, id uint64, code uint16, msg string) Frame {
	body := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(body, code)
	copy(body[2:], msg)
	return Frame{Kind: KindError, Type: t, ID: id, Body: body}
}

// decodeError decodes an error response body.
func decodeError(body []byte) *RemoteError {
	if len(body) < 2 {
		return &RemoteError{Code: CodeMalformed, Message: "transport: short error response"}
	}
	return &RemoteError{Code: binary.BigEndian.Uint16(body), Message: string(body[2:])}
}
