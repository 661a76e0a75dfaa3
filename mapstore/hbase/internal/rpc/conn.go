// Package rpc is the transport of mapstore/hbase: one TCP connection to one HBase server for one
// service, speaking HBase's native RPC protocol (protobuf messages, framed, with call IDs), with
// many calls in flight at once.
package rpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
)

// Services a connection can be opened for; HBase binds a connection to one service in its
// connection header.
const (
	ClientService     = "ClientService"
	MasterService     = "MasterService"
	ClientMetaService = "ClientMetaService"
)

// DefaultMaxFrame bounds a response frame: above HBase's default maximum request size
// (hbase.ipc.max.request.size, 256 MiB), so any legitimate answer fits and a corrupt length
// cannot make the reader allocate gigabytes.
const DefaultMaxFrame = 512 << 20

// clientVersion tells the server which protocol generation this client speaks. HBase gates
// behaviours on it: without a version of at least 1.2 a region server answers a multi-get in
// one response however large (a hundred 20 MB cells would be 2 GB); with it, the server stops
// at hbase.server.scanner.max.result.size (100 MB) and answers the remaining actions with
// MultiActionResultTooLarge, which the client asks for again.
var clientVersion = &pb.VersionInfo{
	Version:      proto.String("2.6.0-gridmap"),
	Url:          proto.String("https://github.com/gridmap/gridmap"),
	Revision:     proto.String("gridmap"),
	User:         proto.String("gridmap"),
	Date:         proto.String(""),
	SrcChecksum:  proto.String(""),
	VersionMajor: proto.Uint32(2),
	VersionMinor: proto.Uint32(6),
}

// Options configure a connection.
type Options struct {
	// User is the effective user sent in the connection header (simple authentication).
	User string
	// DialTimeout bounds the TCP connect and the connection header write.
	DialTimeout time.Duration
	// MaxFrame bounds a response frame; 0 means DefaultMaxFrame.
	MaxFrame int
	// Dial, if set, opens the TCP connection instead of a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Conn is one connection. It is safe for concurrent use: calls are written one at a time and
// answered in any order, matched by call ID. A connection that fails stays failed: every call
// in flight and every later call returns an error wrapping ErrConnection, and Done is closed;
// the owner dials a new one.
type Conn struct {
	nc       net.Conn
	addr     string
	service  string
	maxFrame int

	wmu  sync.Mutex // serialises writes of whole requests
	wbuf []byte

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]chan result
	err     error // why the connection failed; set once

	done chan struct{}
	wg   sync.WaitGroup
}

type result struct {
	resp Response
	err  error
}

// Dial connects to addr and opens service on it.
func Dial(ctx context.Context, addr, service string, opts Options) (*Conn, error) {
	if opts.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.DialTimeout)
		defer cancel()
	}
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = DefaultMaxFrame
	}
	dial := opts.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %v", ErrConnection, addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	hdr, err := AppendConnectionHeader(nil, &pb.ConnectionHeader{
		UserInfo:    &pb.UserInformation{EffectiveUser: proto.String(opts.User)},
		ServiceName: proto.String(service),
		VersionInfo: clientVersion,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetWriteDeadline(dl)
	}
	if _, err := nc.Write(hdr); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: %s: write connection header: %v", ErrConnection, addr, err)
	}
	_ = nc.SetWriteDeadline(time.Time{})
	c := &Conn{
		nc: nc, addr: addr, service: service, maxFrame: opts.MaxFrame,
		pending: make(map[uint32]chan result),
		done:    make(chan struct{}),
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

// Addr returns the server address the connection was dialled to.
func (c *Conn) Addr() string { return c.addr }

// Done is closed when the connection has failed or was closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection failed, or nil while it works.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection and waits for its reader to stop. Calls in flight fail.
func (c *Conn) Close() error {
	c.fail(fmt.Errorf("%w: %s: closed", ErrConnection, c.addr))
	c.wg.Wait()
	return nil
}

// fail records the first failure, closes the socket and fails every call in flight.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	close(c.done)
	c.nc.Close()
	for _, ch := range pending {
		ch <- result{err: err}
	}
}

// Call sends method with req and decodes the answer into resp. The context bounds the whole
// call; its deadline is also sent to the server as the call's timeout. A server exception comes
// back as *RemoteError; a connection failure wraps ErrConnection (then it is unknown whether
// the server ran the call); an answer that cannot be decoded wraps ErrMalformed.
func (c *Conn) Call(ctx context.Context, method string, req, resp proto.Message) error {
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	if c.nextID > 1<<31-1 { // HBase's call IDs are Java ints: stay positive
		c.nextID = 1
	}
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	h := &pb.RequestHeader{CallId: proto.Uint32(id), MethodName: proto.String(method), RequestParam: proto.Bool(req != nil)}
	if dl, ok := ctx.Deadline(); ok {
		ms := time.Until(dl).Milliseconds()
		if ms < 1 {
			ms = 1
		}
		if ms > 1<<31-1 {
			ms = 1<<31 - 1
		}
		h.Timeout = proto.Uint32(uint32(ms))
	}
	if err := c.write(ctx, h, req); err != nil {
		c.forget(id)
		return err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		if err := r.resp.Err(); err != nil {
			return err
		}
		if r.resp.CellBlock != nil {
			return fmt.Errorf("%w: %s answered with a cell block, none was negotiated", ErrMalformed, method)
		}
		if resp != nil {
			if err := proto.Unmarshal(r.resp.Body, resp); err != nil {
				return fmt.Errorf("%w: %s response: %v", ErrMalformed, method, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return ctx.Err()
	}
}

func (c *Conn) forget(id uint32) {
	c.mu.Lock()
	if c.pending != nil {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// write sends one request. A write that fails part-way leaves the stream unusable, so the
// connection fails with it.
func (c *Conn) write(ctx context.Context, h *pb.RequestHeader, req proto.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf, err := AppendRequest(c.wbuf[:0], h, req)
	if err != nil {
		return err
	}
	if cap(buf) <= 1<<20 { // keep small buffers for reuse, let large ones go
		c.wbuf = buf
	} else {
		c.wbuf = nil
	}
	if err := c.Err(); err != nil {
		return err
	}
	// The context's end interrupts a write stuck on a full socket buffer.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetWriteDeadline(time.Unix(1, 0)) })
	_, werr := c.nc.Write(buf)
	if !stop() {
		// The deadline was set: the socket is unusable if the write did not finish.
		if werr == nil {
			_ = c.nc.SetWriteDeadline(time.Time{})
		}
	}
	if werr != nil {
		err := fmt.Errorf("%w: %s: write: %v", ErrConnection, c.addr, werr)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %s: write interrupted: %w", ErrConnection, c.addr, ctx.Err())
		}
		c.fail(err)
		return err
	}
	return nil
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var lenBuf [4]byte
	for {
		if _, err := io.ReadFull(br, lenBuf[:]); err != nil {
			c.fail(fmt.Errorf("%w: %s: read: %v", ErrConnection, c.addr, err))
			return
		}
		n := binary.BigEndian.Uint32(lenBuf[:])
		if uint64(n) > uint64(c.maxFrame) {
			c.fail(fmt.Errorf("%w: %w: %s announced %d bytes, limit %d", ErrConnection, ErrFrameTooLarge, c.addr, n, c.maxFrame))
			return
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			c.fail(fmt.Errorf("%w: %s: read: %v", ErrConnection, c.addr, err))
			return
		}
		resp, err := DecodeResponse(frame)
		if err != nil {
			// The stream is still framed, but the answer cannot be matched to its call: every
			// call in flight might be the one waiting for it, so the connection fails.
			c.fail(fmt.Errorf("%w: %s: %w", ErrConnection, c.addr, err))
			return
		}
		id := resp.Header.GetCallId()
		c.mu.Lock()
		ch, ok := c.pending[id]
		if ok {
			delete(c.pending, id)
		}
		c.mu.Unlock()
		if ok {
			ch <- result{resp: resp}
			continue
		}
		if rerr := resp.Err(); rerr != nil && (id == 0 || id > 1<<31-1) {
			// An exception for no call (HBase answers a rejected connection header this way,
			// with call ID -1 or 0): the connection is unusable.
			c.fail(fmt.Errorf("%w: %s refused the connection: %w", ErrConnection, c.addr, rerr))
			return
		}
		// An answer to a call that gave up (its context ended): drop it.
	}
}

// IsConnection reports whether err is a connection failure.
func IsConnection(err error) bool { return errors.Is(err, ErrConnection) }
