package hbase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
	"github.com/gridmap/gridmap/mapstore/hbase/internal/rpc"
)

// Client talks to one HBase cluster over HBase's native RPC protocol. It keeps one connection
// per server and service, with any number of calls in flight on it, and a cache of region
// locations. It is safe for concurrent use. Close releases its connections.
type Client struct {
	cfg Config
	log *slog.Logger

	regions *regionCache

	mu     sync.Mutex
	conns  map[connKey]*rpc.Conn
	gates  map[string]*byteGate // per region server address: request bytes in flight
	bg     sync.WaitGroup       // writeCall's calls that outlive their callers
	meta   *region              // location of hbase:meta's first region; nil until looked up
	closed bool
}

type connKey struct{ addr, service string }

// NewClient returns a client of the cluster cfg names. It does not connect: the first
// operation does, and a server that is down is retried then.
func NewClient(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		regions: newRegionCache(),
		conns:   make(map[connKey]*rpc.Conn),
		gates:   make(map[string]*byteGate),
	}, nil
}

// Close closes every connection; calls in flight fail and later calls return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for _, cn := range conns {
		cn.Close()
	}
	// Calls still waiting for an answer fail with their connections.
	c.bg.Wait()
	return nil
}

// conn returns a working connection to addr for service, dialling one if needed.
func (c *Client) conn(ctx context.Context, addr, service string) (*rpc.Conn, error) {
	k := connKey{addr, service}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if cn := c.conns[k]; cn != nil && cn.Err() == nil {
		c.mu.Unlock()
		return cn, nil
	}
	c.mu.Unlock()
	cn, err := rpc.Dial(ctx, addr, service, rpc.Options{User: c.cfg.User, DialTimeout: c.cfg.DialTimeout, Dial: c.cfg.Dial})
	if err != nil {
		return nil, convertErr(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cn.Close()
		return nil, ErrClosed
	}
	if old := c.conns[k]; old != nil && old.Err() == nil {
		// Another call dialled meanwhile: keep one connection.
		cn.Close()
		return old, nil
	}
	c.conns[k] = cn
	return cn, nil
}

// dropConn forgets (and closes) the connection to addr for service if it is cn.
func (c *Client) dropConn(addr string) {
	c.mu.Lock()
	var drop []*rpc.Conn
	for k, cn := range c.conns {
		if k.addr == addr {
			drop = append(drop, cn)
			delete(c.conns, k)
		}
	}
	if c.meta != nil && c.meta.addr == addr {
		c.meta = nil
	}
	c.mu.Unlock()
	for _, cn := range drop {
		cn.Close()
	}
	c.regions.removeServer(addr)
}

// gate returns the in-flight bound of the region server at addr.
func (c *Client) gate(addr string) *byteGate {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gates[addr]
	if g == nil {
		g = newByteGate(c.cfg.MaxInFlightBytes)
		c.gates[addr] = g
	}
	return g
}

// writeCall is call for a request of about size bytes: it waits until the bytes fit under
// Config.MaxInFlightBytes for addr, and holds them until the server has answered. That is not
// when the caller stops waiting: a region server blocked on full memstores keeps a request it
// has read (and prints it into its reports to the master) for up to a minute, and a caller that
// gave up and retried would put a second copy beside the first. So the call goes on in the
// background after ctx ends, until the answer comes, the connection fails, the client closes,
// or Config.OpTimeout passes; the caller gets ctx's error at once.
func (c *Client) writeCall(ctx context.Context, addr, method string, size int64, req, resp proto.Message) error {
	g := c.gate(addr)
	n, err := g.acquire(ctx, size)
	if err != nil {
		return err
	}
	cn, err := c.conn(ctx, addr, rpc.ClientService)
	if err != nil {
		g.release(n)
		if errors.Is(err, ErrConnection) {
			c.regions.removeServer(addr)
		}
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		g.release(n)
		return ErrClosed
	}
	c.bg.Add(1)
	c.mu.Unlock()
	answer := resp.ProtoReflect().New().Interface() // the background call's own: resp is the caller's
	done := make(chan error, 1)
	go func() {
		defer c.bg.Done()
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.OpTimeout)
		defer cancel()
		err := cn.Call(bctx, method, req, answer)
		g.release(n)
		done <- err
	}()
	select {
	case err := <-done:
		err = convertErr(err)
		if errors.Is(err, ErrConnection) {
			c.dropConn(addr)
		}
		if err == nil {
			proto.Merge(resp, answer)
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call runs one RPC and converts its error. A connection failure drops the connection and the
// cached regions of that server.
func (c *Client) call(ctx context.Context, addr, service, method string, req, resp proto.Message) error {
	cn, err := c.conn(ctx, addr, service)
	if err != nil {
		if errors.Is(err, ErrConnection) {
			c.regions.removeServer(addr)
		}
		return err
	}
	err = convertErr(cn.Call(ctx, method, req, resp))
	if errors.Is(err, ErrConnection) {
		c.dropConn(addr)
	}
	return err
}

// opContext bounds an operation by Config.OpTimeout when ctx has no deadline of its own: a
// caller's deadline, earlier or later, is the caller's choice (a table creation on a busy
// master may need minutes).
func (c *Client) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.OpTimeout)
}

// retry runs attempt until it succeeds, fails with an error that a retry cannot fix, or ctx
// ends; between tries it backs off exponentially. The error returned is the last attempt's
// (with the context's error joined when the context ended the retries).
func (c *Client) retry(ctx context.Context, what string, attempt func(ctx context.Context) error) error {
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	wait := c.cfg.RetryInitial
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrClosed) || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		if errors.Is(err, errRetryNow) {
			// The last attempt made progress and the server wants the rest now.
			c.log.Debug("hbase: retrying at once", "op", what, "attempt", n, "err", err)
			continue
		}
		c.log.Debug("hbase: retrying", "op", what, "attempt", n, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		}
		wait = min(2*wait, c.cfg.RetryMax)
	}
}

// metaRegion returns the location of hbase:meta, asking the connection registry
// (ClientMetaService.GetMetaRegionLocations) of the configured masters when not known.
func (c *Client) metaRegion(ctx context.Context) (*region, error) {
	c.mu.Lock()
	m := c.meta
	c.mu.Unlock()
	if m != nil {
		return m, nil
	}
	var errs []error
	for _, addr := range c.cfg.Addrs {
		resp := &pb.GetMetaRegionLocationsResponse{}
		err := c.call(ctx, addr, rpc.ClientMetaService, "GetMetaRegionLocations", &pb.GetMetaRegionLocationsRequest{}, resp)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		for _, loc := range resp.GetMetaLocations() {
			ri := loc.GetRegionInfo()
			if ri.GetReplicaId() != 0 || loc.GetServerName() == nil {
				continue
			}
			sn := loc.GetServerName()
			r := &region{
				table: metaTable,
				name:  regionName(ri),
				start: ri.GetStartKey(),
				end:   ri.GetEndKey(),
				addr:  net.JoinHostPort(sn.GetHostName(), strconv.Itoa(int(sn.GetPort()))),
				info:  ri,
			}
			c.mu.Lock()
			c.meta = r
			c.mu.Unlock()
			return r, nil
		}
		errs = append(errs, fmt.Errorf("%w: %s knows no location of hbase:meta", ErrNotServingRegion, addr))
	}
	return nil, errors.Join(errs...)
}

func (c *Client) forgetMeta(m *region) {
	c.mu.Lock()
	if c.meta == m {
		c.meta = nil
	}
	c.mu.Unlock()
}

// activeMaster returns the address of the active master, asking the connection registry.
func (c *Client) activeMaster(ctx context.Context) (string, error) {
	var errs []error
	for _, addr := range c.cfg.Addrs {
		resp := &pb.GetActiveMasterResponse{}
		err := c.call(ctx, addr, rpc.ClientMetaService, "GetActiveMaster", &pb.GetActiveMasterRequest{}, resp)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		if sn := resp.GetServerName(); sn != nil {
			return net.JoinHostPort(sn.GetHostName(), strconv.Itoa(int(sn.GetPort()))), nil
		}
		errs = append(errs, fmt.Errorf("%w: %s knows no active master", ErrServerBusy, addr))
	}
	return "", errors.Join(errs...)
}

// locate returns the region of table holding row, from the cache or from hbase:meta (one
// attempt: callers retry).
func (c *Client) locate(ctx context.Context, table string, row []byte) (*region, error) {
	if r := c.regions.lookup(table, row); r != nil {
		return r, nil
	}
	meta, err := c.metaRegion(ctx)
	if err != nil {
		return nil, err
	}
	req := &pb.ScanRequest{
		Region: meta.specifier(),
		Scan: &pb.Scan{
			StartRow: metaSearchKey(table, row),
			Reversed: proto.Bool(true),
			Column:   []*pb.Column{{Family: []byte("info")}},
			Caching:  proto.Uint32(1),
		},
		NumberOfRows: proto.Uint32(1),
		CloseScanner: proto.Bool(true),
	}
	resp := &pb.ScanResponse{}
	if err := c.call(ctx, meta.addr, rpc.ClientService, "Scan", req, resp); err != nil {
		if retryable(err) {
			c.forgetMeta(meta)
		}
		return nil, fmt.Errorf("locate %s row %q in hbase:meta: %w", table, row, err)
	}
	if len(resp.GetResults()) == 0 {
		return nil, fmt.Errorf("%w: %s (no region in hbase:meta)", ErrTableNotFound, table)
	}
	r, err := parseMetaRow(resp.GetResults()[0])
	if r != nil && r.table != table {
		return nil, fmt.Errorf("%w: %s (no region in hbase:meta)", ErrTableNotFound, table)
	}
	if err != nil {
		return nil, fmt.Errorf("locate %s row %q: %w", table, row, err)
	}
	if !r.contains(row) {
		// A hole in meta: a split or merge is being recorded. Retry.
		return nil, fmt.Errorf("%w: %s row %q: hbase:meta has region %q [%q, %q) only", ErrNotServingRegion, table, row, r.name, r.start, r.end)
	}
	c.regions.add(r)
	return r, nil
}

// relocate drops the cached location of r when err says the region is not where the cache
// says (a busy server keeps its regions: only the back-off helps there).
func (c *Client) relocate(r *region, err error) {
	if err != nil && (errors.Is(err, ErrNotServingRegion) || errors.Is(err, ErrConnection) || errors.Is(err, errScannerLost)) {
		c.regions.remove(r)
	}
}

// regionCall runs method on the region of table holding row, retrying through re-location. A
// write passes its size (for Config.MaxInFlightBytes); a read passes 0.
func (c *Client) regionCall(ctx context.Context, table string, row []byte, method string, size int64, build func(r *region) proto.Message, resp proto.Message) error {
	return c.retry(ctx, method, func(ctx context.Context) error {
		r, err := c.locate(ctx, table, row)
		if err != nil {
			return err
		}
		proto.Reset(resp)
		if size > 0 {
			err = c.writeCall(ctx, r.addr, method, size, build(r), resp)
		} else {
			err = c.call(ctx, r.addr, rpc.ClientService, method, build(r), resp)
		}
		c.relocate(r, err)
		return err
	})
}

// compareBytes is bytes.Compare, for row keys.
func compareBytes(a, b []byte) int { return bytes.Compare(a, b) }
