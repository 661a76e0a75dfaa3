package hbase

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
	"github.com/gridmap/gridmap/mapstore/hbase/internal/rpc"
)

// Cell is one value of a row: family:qualifier at a timestamp (milliseconds, set by the
// server).
type Cell struct {
	Family, Qualifier, Value []byte
	Timestamp                uint64
}

// Row is a row key and its cells, as Get and Scan return them.
type Row struct {
	Key   []byte
	Cells []Cell
}

// Value returns the value of family:qualifier, and whether the row has it.
func (r Row) Value(family, qualifier string) ([]byte, bool) {
	for _, c := range r.Cells {
		if string(c.Family) == family && string(c.Qualifier) == qualifier {
			return c.Value, true
		}
	}
	return nil, false
}

func rowFromResult(key []byte, res *pb.Result) Row {
	r := Row{Key: key}
	for _, c := range res.GetCell() {
		if r.Key == nil {
			r.Key = c.GetRow()
		}
		r.Cells = append(r.Cells, Cell{Family: c.GetFamily(), Qualifier: c.GetQualifier(), Value: c.GetValue(), Timestamp: c.GetTimestamp()})
	}
	return r
}

// Column is one qualifier and value of a Put.
type Column struct {
	Qualifier, Value []byte
}

// Mutation changes one row: it puts Columns into Family, or, with Delete, removes the whole
// row (every family and version).
type Mutation struct {
	Row     []byte
	Family  string
	Columns []Column
	Delete  bool
}

func (m Mutation) proto() *pb.MutationProto {
	mp := &pb.MutationProto{Row: m.Row}
	if m.Delete {
		mp.MutateType = pb.MutationProto_DELETE.Enum()
		return mp
	}
	mp.MutateType = pb.MutationProto_PUT.Enum()
	cv := &pb.MutationProto_ColumnValue{Family: []byte(m.Family)}
	for _, col := range m.Columns {
		cv.QualifierValue = append(cv.QualifierValue, &pb.MutationProto_ColumnValue_QualifierValue{Qualifier: col.Qualifier, Value: col.Value})
	}
	mp.ColumnValue = []*pb.MutationProto_ColumnValue{cv}
	return mp
}

func (m Mutation) size() int64 {
	n := int64(len(m.Row)) + 32
	for _, col := range m.Columns {
		n += int64(len(col.Qualifier)+len(col.Value)) + 16
	}
	return n
}

func (m Mutation) check() error {
	if len(m.Row) == 0 {
		return fmt.Errorf("%w: empty row key", ErrBadKey)
	}
	if !m.Delete && (m.Family == "" || len(m.Columns) == 0) {
		return fmt.Errorf("%w: a put of row %q needs a family and at least one column", ErrBadKey, m.Row)
	}
	return nil
}

func getProto(row []byte, family string, keysOnly bool) *pb.Get {
	g := &pb.Get{Row: row}
	if family != "" {
		g.Column = []*pb.Column{{Family: []byte(family)}}
	}
	if keysOnly {
		g.Filter = keyOnlyFilter()
	}
	return g
}

func keyOnlyFilter() *pb.Filter {
	ser, _ := proto.Marshal(&pb.KeyOnlyFilter{LenAsVal: proto.Bool(false)})
	return &pb.Filter{Name: proto.String("org.apache.hadoop.hbase.filter.KeyOnlyFilter"), SerializedFilter: ser}
}

// Get reads row of table (only family, unless family is ""). found is false when the row has no
// cells.
func (c *Client) Get(ctx context.Context, table string, row []byte, family string) (r Row, found bool, err error) {
	if len(row) == 0 {
		return Row{}, false, fmt.Errorf("%w: empty row key", ErrBadKey)
	}
	resp := &pb.GetResponse{}
	err = c.regionCall(ctx, table, row, "Get", 0, func(r *region) proto.Message {
		return &pb.GetRequest{Region: r.specifier(), Get: getProto(row, family, false)}
	}, resp)
	if err != nil {
		return Row{}, false, fmt.Errorf("get %s row %q: %w", table, row, err)
	}
	res := resp.GetResult()
	if len(res.GetCell()) == 0 {
		return Row{Key: row}, false, nil
	}
	return rowFromResult(row, res), true, nil
}

// Apply applies one mutation.
func (c *Client) Apply(ctx context.Context, table string, m Mutation) error {
	if err := m.check(); err != nil {
		return err
	}
	resp := &pb.MutateResponse{}
	err := c.regionCall(ctx, table, m.Row, "Mutate", m.size(), func(r *region) proto.Message {
		return &pb.MutateRequest{Region: r.specifier(), Mutation: m.proto()}
	}, resp)
	if err != nil {
		return fmt.Errorf("mutate %s row %q: %w", table, m.Row, err)
	}
	return nil
}

// ApplyAll applies every mutation of ms, grouped into one Multi request per region server
// (several when the group exceeds Config.MaxRequestBytes), sent concurrently. Mutations that
// fail with a retryable error (a region that moved or split, a busy server, a broken
// connection) are located again and retried; on any other error, or when the retries run out,
// ApplyAll returns an error and an unknown subset of ms was applied. Mutations of one row are
// applied in order only if they are in different calls: within one call their order is not
// defined.
func (c *Client) ApplyAll(ctx context.Context, table string, ms []Mutation) error {
	for _, m := range ms {
		if err := m.check(); err != nil {
			return err
		}
	}
	rows := make([][]byte, len(ms))
	for i, m := range ms {
		rows[i] = m.Row
	}
	err := c.multi(ctx, table, rows, func(i int) (*pb.Action, int64) {
		return &pb.Action{Mutation: ms[i].proto()}, ms[i].size()
	}, nil)
	if err != nil {
		return fmt.Errorf("multi mutate %s (%d rows): %w", table, len(ms), err)
	}
	return nil
}

// GetMany reads rows of table in Multi requests grouped by region server. rows[i]'s result is
// at index i; a row without cells has none (len(Cells) == 0).
func (c *Client) GetMany(ctx context.Context, table string, rows [][]byte, family string) ([]Row, error) {
	for _, r := range rows {
		if len(r) == 0 {
			return nil, fmt.Errorf("%w: empty row key", ErrBadKey)
		}
	}
	out := make([]Row, len(rows))
	err := c.multi(ctx, table, rows, func(i int) (*pb.Action, int64) {
		return &pb.Action{Get: getProto(rows[i], family, false)}, int64(len(rows[i])) + 32
	}, func(i int, res *pb.Result) {
		out[i] = rowFromResult(rows[i], res)
	})
	if err != nil {
		return nil, fmt.Errorf("multi get %s (%d rows): %w", table, len(rows), err)
	}
	return out, nil
}

// multi runs one action per row through Multi requests, retrying the actions that fail with a
// retryable error. onResult (may be nil) receives the result of action i once it succeeded; it
// is called from one goroutine at a time.
func (c *Client) multi(ctx context.Context, table string, rows [][]byte, action func(i int) (*pb.Action, int64), onResult func(i int, res *pb.Result)) error {
	pending := make([]int, len(rows))
	for i := range pending {
		pending[i] = i
	}
	var resMu sync.Mutex
	return c.retry(ctx, "Multi", func(ctx context.Context) error {
		before := len(pending)
		// Group by region, then by server.
		type group struct {
			r       *region
			actions []int
		}
		byRegion := map[*region]*group{}
		var order []*region
		var failed []int
		var firstErr error
		onlyRetryNow := true // every failure so far asks for an immediate retry
		for _, i := range pending {
			r, err := c.locate(ctx, table, rows[i])
			if err != nil {
				if !retryable(err) {
					return err
				}
				failed = append(failed, i)
				firstErr = cmpErr(firstErr, err)
				onlyRetryNow = false
				continue
			}
			g := byRegion[r]
			if g == nil {
				g = &group{r: r}
				byRegion[r] = g
				order = append(order, r)
			}
			g.actions = append(g.actions, i)
		}
		byServer := map[string][]*group{}
		var servers []string
		for _, r := range order {
			if byServer[r.addr] == nil {
				servers = append(servers, r.addr)
			}
			byServer[r.addr] = append(byServer[r.addr], byRegion[r])
		}
		sort.Strings(servers)

		// Requests: per server, region actions packed until MaxRequestBytes.
		type request struct {
			addr    string
			req     *pb.MultiRequest
			regions []*region
			index   [][]int // per region action: original indices by action index
			bytes   int64
		}
		var reqs []*request
		for _, addr := range servers {
			var cur *request
			var curBytes int64
			for _, g := range byServer[addr] {
				var ra *pb.RegionAction
				for _, i := range g.actions {
					a, size := action(i)
					if cur == nil || (curBytes > 0 && curBytes+size > c.cfg.MaxRequestBytes) {
						cur = &request{addr: addr, req: &pb.MultiRequest{}}
						curBytes = 0
						reqs = append(reqs, cur)
						ra = nil
					}
					if ra == nil {
						ra = &pb.RegionAction{Region: g.r.specifier()}
						cur.req.RegionAction = append(cur.req.RegionAction, ra)
						cur.regions = append(cur.regions, g.r)
						cur.index = append(cur.index, nil)
					}
					k := len(cur.index) - 1
					a.Index = proto.Uint32(uint32(len(cur.index[k])))
					ra.Action = append(ra.Action, a)
					cur.index[k] = append(cur.index[k], i)
					curBytes += size
					cur.bytes += size
				}
			}
		}

		var mu sync.Mutex
		var wg sync.WaitGroup
		var fatal error
		for _, rq := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp := &pb.MultiResponse{}
				err := c.writeCall(ctx, rq.addr, "Multi", rq.bytes, rq.req, resp)
				mu.Lock()
				defer mu.Unlock()
				if err == nil && len(resp.GetRegionActionResult()) != len(rq.req.GetRegionAction()) {
					err = fmt.Errorf("%w: Multi answered %d region results for %d region actions", ErrMalformed, len(resp.GetRegionActionResult()), len(rq.req.GetRegionAction()))
				}
				if err != nil {
					if !retryable(err) {
						fatal = cmpErr(fatal, err)
						return
					}
					for k, idx := range rq.index {
						c.relocate(rq.regions[k], err)
						failed = append(failed, idx...)
					}
					firstErr = cmpErr(firstErr, err)
					onlyRetryNow = onlyRetryNow && errors.Is(err, errRetryNow)
					return
				}
				for k, rar := range resp.GetRegionActionResult() {
					idx := rq.index[k]
					if ex := rar.GetException(); ex != nil {
						err := newServerError(ex.GetName(), firstLine(string(ex.GetValue())), false)
						if !retryable(err) {
							fatal = cmpErr(fatal, err)
							continue
						}
						c.relocate(rq.regions[k], err)
						failed = append(failed, idx...)
						firstErr = cmpErr(firstErr, err)
						onlyRetryNow = onlyRetryNow && errors.Is(err, errRetryNow)
						continue
					}
					done := make([]bool, len(idx))
					for _, roe := range rar.GetResultOrException() {
						j := int(roe.GetIndex())
						if roe.Index == nil || j >= len(idx) || done[j] {
							fatal = cmpErr(fatal, fmt.Errorf("%w: Multi result with index %d out of %d actions", ErrMalformed, j, len(idx)))
							continue
						}
						done[j] = true
						if ex := roe.GetException(); ex != nil {
							err := newServerError(ex.GetName(), firstLine(string(ex.GetValue())), false)
							if !retryable(err) {
								fatal = cmpErr(fatal, fmt.Errorf("row %q: %w", rows[idx[j]], err))
								continue
							}
							c.relocate(rq.regions[k], err)
							failed = append(failed, idx[j])
							firstErr = cmpErr(firstErr, err)
							onlyRetryNow = onlyRetryNow && errors.Is(err, errRetryNow)
							continue
						}
						if onResult != nil {
							resMu.Lock()
							onResult(idx[j], roe.GetResult())
							resMu.Unlock()
						}
					}
					for j, ok := range done {
						if !ok {
							fatal = cmpErr(fatal, fmt.Errorf("%w: Multi gave no result for row %q", ErrMalformed, rows[idx[j]]))
						}
					}
				}
			}()
		}
		wg.Wait()
		if fatal != nil {
			return fatal
		}
		sort.Ints(failed)
		pending = failed
		if len(pending) > 0 {
			if onlyRetryNow && len(pending) < before {
				return fmt.Errorf("%d of the actions to retry: %w: %w", len(pending), errRetryNow, firstErr)
			}
			return fmt.Errorf("%d of the actions to retry: %w", len(pending), firstErr)
		}
		return nil
	})
}

// cmpErr keeps the first error.
func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			s = s[:i]
			break
		}
	}
	if len(s) > 1000 {
		s = s[:1000] + "..."
	}
	return s
}

// ScanOptions select the rows of a Scan.
type ScanOptions struct {
	// Prefix, when set, limits the scan to rows starting with it (Start and Stop are then
	// ignored).
	Prefix []byte
	// Start is the first row (inclusive), Stop the end (exclusive); nil means the table's
	// first row or its end.
	Start, Stop []byte
	// Family limits the cells to one family; "" returns every family.
	Family string
	// KeysOnly returns the cells without their values (KeyOnlyFilter on the server): listing
	// keys then costs no value transfer.
	KeysOnly bool
	// Caching is the number of rows per round trip. Default DefaultScanCaching.
	Caching int
}

// prefixEnd returns the first key after every key starting with prefix, or nil when there is
// none (a prefix of 0xff bytes only).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Scan calls fn for every row of table in opts' range, in row key order, region after
// region. The row and its slices are fn's to keep. If fn returns an error, Scan stops and
// returns it. A region that moves or splits during the scan, or a scanner the server lost, is
// reopened after the last row returned, so no row is returned twice or skipped.
func (c *Client) Scan(ctx context.Context, table string, opts ScanOptions, fn func(Row) error) error {
	start, stop := opts.Start, opts.Stop
	if opts.Prefix != nil {
		start, stop = opts.Prefix, prefixEnd(opts.Prefix)
	}
	caching := opts.Caching
	if caching <= 0 {
		caching = DefaultScanCaching
	}
	next := append([]byte(nil), start...)
	if next == nil {
		next = []byte{}
	}
	for {
		var r *region
		var scanErr error
		var fnErr error
		regionDone, scanDone := false, false
		err := c.retry(ctx, "Scan", func(ctx context.Context) error {
			var err error
			r, err = c.locateScan(ctx, table, next)
			if err != nil {
				return err
			}
			regionDone, scanDone, fnErr, scanErr = c.scanRegion(ctx, r, next, stop, opts, caching, func(row Row) error {
				// Resume after this row if the region must be reopened.
				next = append(append(next[:0:0], row.Key...), 0)
				return fn(row)
			})
			c.relocate(r, scanErr)
			return scanErr
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("scan %s from %q: %w", table, next, err)
		}
		if scanDone || (regionDone && (len(r.end) == 0 || (stop != nil && compareBytes(r.end, stop) >= 0))) {
			return nil
		}
		next = append(next[:0:0], r.end...)
	}
}

// locateScan finds the region holding row; the empty row is the table's first region.
func (c *Client) locateScan(ctx context.Context, table string, row []byte) (*region, error) {
	return c.locate(ctx, table, row)
}

// scanRegion scans one region from start. regionDone: the region has no more rows in range;
// scanDone: the whole scan reached its end. fnErr is fn's error (the scan stops); err is a
// server or connection error (the caller retries from the last row).
func (c *Client) scanRegion(ctx context.Context, r *region, start, stop []byte, opts ScanOptions, caching int, fn func(Row) error) (regionDone, scanDone bool, fnErr, err error) {
	scan := &pb.Scan{StartRow: start, StopRow: stop, Caching: proto.Uint32(uint32(caching))}
	if opts.Family != "" {
		scan.Column = []*pb.Column{{Family: []byte(opts.Family)}}
	}
	if opts.KeysOnly {
		scan.Filter = keyOnlyFilter()
	}
	req := &pb.ScanRequest{Region: r.specifier(), Scan: scan, NumberOfRows: proto.Uint32(uint32(caching))}
	var scannerID uint64
	open := false
	var seq uint64
	for {
		resp := &pb.ScanResponse{}
		if err := c.call(ctx, r.addr, rpc.ClientService, "Scan", req, resp); err != nil {
			return false, false, nil, err
		}
		if resp.ScannerId != nil {
			scannerID, open = resp.GetScannerId(), true
		}
		if len(resp.GetCellsPerResult()) > 0 {
			return false, false, nil, fmt.Errorf("%w: Scan answered cell block counts, none was negotiated", ErrMalformed)
		}
		for _, res := range resp.GetResults() {
			if len(res.GetCell()) == 0 {
				continue
			}
			row := rowFromResult(nil, res)
			if err := fn(row); err != nil {
				if open {
					c.closeScanner(r, scannerID)
				}
				return false, false, err, nil
			}
		}
		more := resp.MoreResults == nil || resp.GetMoreResults()
		if !more {
			return true, true, nil, nil
		}
		inRegion := resp.GetMoreResultsInRegion()
		if resp.MoreResultsInRegion == nil {
			inRegion = len(resp.GetResults()) > 0
		}
		if !inRegion {
			// The server closed the scanner at the region's end.
			return true, false, nil, nil
		}
		if !open {
			return false, false, nil, fmt.Errorf("%w: Scan says more rows follow but gave no scanner id", ErrMalformed)
		}
		seq++
		req = &pb.ScanRequest{ScannerId: proto.Uint64(scannerID), NumberOfRows: proto.Uint32(uint32(caching)), NextCallSeq: proto.Uint64(seq)}
	}
}

// closeScanner releases a scanner on the server, best effort (it expires anyway).
func (c *Client) closeScanner(r *region, id uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	err := c.call(ctx, r.addr, rpc.ClientService, "Scan", &pb.ScanRequest{ScannerId: proto.Uint64(id), CloseScanner: proto.Bool(true), NumberOfRows: proto.Uint32(0)}, &pb.ScanResponse{})
	if err != nil && !errors.Is(err, ErrClosed) {
		c.log.Debug("hbase: closing scanner", "region", string(r.name), "err", err)
	}
}
