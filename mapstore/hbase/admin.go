package hbase

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
	"github.com/gridmap/gridmap/mapstore/hbase/internal/rpc"
)

// masterCall runs one MasterService call on the active master, retrying while it is busy or
// moving.
func (c *Client) masterCall(ctx context.Context, method string, req, resp proto.Message) error {
	return c.retry(ctx, method, func(ctx context.Context) error {
		addr, err := c.activeMaster(ctx)
		if err != nil {
			return err
		}
		proto.Reset(resp)
		return c.call(ctx, addr, rpc.MasterService, method, req, resp)
	})
}

// CreateTable creates table with one column family per name in families (each keeping one
// version) and waits until the procedure finished and every region is served. It fails with
// ErrTableExists if the table is there already.
func (c *Client) CreateTable(ctx context.Context, table string, families ...string) error {
	return c.CreateTableWith(ctx, table, TableOptions{}, families...)
}

// TableOptions are the options of CreateTableWith and EnsureTableWith.
type TableOptions struct {
	// SplitKeys pre-split the table (sorted, distinct, none empty): it starts with
	// len(SplitKeys)+1 regions, so writes spread over servers from the start instead of waiting
	// for the first region to grow and split. SocorroKeys.SplitKeys gives one region per salt.
	SplitKeys [][]byte
	// MOBThreshold, when positive, makes the families MOB families (HBase's medium objects):
	// cells of at least this many bytes are kept in MOB files of their own, outside the store
	// files that compactions rewrite, as the embedded store keeps large values in blob files.
	// 100 KB is HBase's usual threshold; 0 keeps every cell in the store files.
	MOBThreshold int64
}

// CreateTableWith is CreateTable with options.
func (c *Client) CreateTableWith(ctx context.Context, table string, opts TableOptions, families ...string) error {
	if len(families) == 0 {
		return fmt.Errorf("%w: CreateTable %s without a column family", ErrInvalidConfig, table)
	}
	schema := &pb.TableSchema{TableName: tableName(table)}
	for _, f := range families {
		cf := &pb.ColumnFamilySchema{
			Name: []byte(f),
			Attributes: []*pb.BytesBytesPair{
				{First: []byte("VERSIONS"), Second: []byte("1")},
			},
		}
		if opts.MOBThreshold > 0 {
			cf.Attributes = append(cf.Attributes,
				&pb.BytesBytesPair{First: []byte("IS_MOB"), Second: []byte("true")},
				&pb.BytesBytesPair{First: []byte("MOB_THRESHOLD"), Second: []byte(strconv.FormatInt(opts.MOBThreshold, 10))})
		}
		schema.ColumnFamilies = append(schema.ColumnFamilies, cf)
	}
	resp := &pb.CreateTableResponse{}
	if err := c.masterCall(ctx, "CreateTable", &pb.CreateTableRequest{TableSchema: schema, SplitKeys: opts.SplitKeys}, resp); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	if err := c.waitProcedure(ctx, resp.GetProcId()); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return c.waitServed(ctx, table)
}

// EnsureTable creates table with the given families unless it exists, and waits until it is
// served. An existing table is used as it is (its families are not checked).
func (c *Client) EnsureTable(ctx context.Context, table string, families ...string) error {
	return c.EnsureTableWith(ctx, table, TableOptions{}, families...)
}

// EnsureTableWith is EnsureTable creating a missing table with opts (CreateTableWith).
func (c *Client) EnsureTableWith(ctx context.Context, table string, opts TableOptions, families ...string) error {
	err := c.CreateTableWith(ctx, table, opts, families...)
	if errors.Is(err, ErrTableExists) {
		return c.waitServed(ctx, table)
	}
	return err
}

// DeleteTable disables and deletes table, waiting for both procedures.
func (c *Client) DeleteTable(ctx context.Context, table string) error {
	dresp := &pb.DisableTableResponse{}
	err := c.masterCall(ctx, "DisableTable", &pb.DisableTableRequest{TableName: tableName(table)}, dresp)
	if err == nil {
		err = c.waitProcedure(ctx, dresp.GetProcId())
	}
	if err != nil && !isClass(err, "TableNotEnabledException") {
		return fmt.Errorf("disable table %s: %w", table, err)
	}
	resp := &pb.DeleteTableResponse{}
	if err := c.masterCall(ctx, "DeleteTable", &pb.DeleteTableRequest{TableName: tableName(table)}, resp); err != nil {
		return fmt.Errorf("delete table %s: %w", table, err)
	}
	c.regions.removeTable(table)
	if err := c.waitProcedure(ctx, resp.GetProcId()); err != nil {
		return fmt.Errorf("delete table %s: %w", table, err)
	}
	return nil
}

// SplitRegion asks the master to split the region of table holding splitRow at splitRow, and
// waits for the split procedure. The client's cached location of the parent region is then
// stale; operations find the daughters through hbase:meta when the parent answers that it is
// not served any more.
func (c *Client) SplitRegion(ctx context.Context, table string, splitRow []byte) error {
	resp := &pb.SplitTableRegionResponse{}
	err := c.retry(ctx, "SplitRegion", func(ctx context.Context) error {
		// Always from hbase:meta: a cached location may be a parent split meanwhile.
		if r := c.regions.lookup(table, splitRow); r != nil {
			c.regions.remove(r)
		}
		r, err := c.locate(ctx, table, splitRow)
		if err != nil {
			return err
		}
		addr, err := c.activeMaster(ctx)
		if err != nil {
			return err
		}
		proto.Reset(resp)
		err = c.call(ctx, addr, rpc.MasterService, "SplitRegion", &pb.SplitTableRegionRequest{RegionInfo: r.info, SplitRow: splitRow}, resp)
		if isClass(err, "DoNotRetryRegionException") {
			// The region is not open (yet): a split or assignment is in progress; retry on the
			// location meta gives next.
			return fmt.Errorf("%w: %w", ErrNotServingRegion, err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("split %s at %q: %w", table, splitRow, err)
	}
	if err := c.waitProcedure(ctx, resp.GetProcId()); err != nil {
		return fmt.Errorf("split %s at %q: %w", table, splitRow, err)
	}
	return nil
}

func isClass(err error, short string) bool {
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	return se.Class == short || len(se.Class) > len(short) && se.Class[len(se.Class)-len(short)-1:] == "."+short
}

// waitProcedure polls the master until procedure id finished; a failed procedure's exception
// is returned. (The method is spelled with a lower-case g in HBase's MasterService.)
func (c *Client) waitProcedure(ctx context.Context, id uint64) error {
	if id == 0 {
		return nil
	}
	return c.retry(ctx, "GetProcedureResult", func(ctx context.Context) error {
		resp := &pb.GetProcedureResultResponse{}
		addr, err := c.activeMaster(ctx)
		if err != nil {
			return err
		}
		if err := c.call(ctx, addr, rpc.MasterService, "getProcedureResult", &pb.GetProcedureResultRequest{ProcId: proto.Uint64(id)}, resp); err != nil {
			return err
		}
		switch resp.GetState() {
		case pb.GetProcedureResultResponse_FINISHED:
			if ex := resp.GetException(); ex != nil {
				g := ex.GetGenericException()
				return newServerError(g.GetClassName(), g.GetMessage(), true)
			}
			return nil
		case pb.GetProcedureResultResponse_NOT_FOUND:
			// Finished long ago and forgotten (results are kept for a while): done.
			return nil
		default:
			return fmt.Errorf("%w: procedure %d still running", ErrServerBusy, id)
		}
	})
}

// waitServed waits until every region of table is open: a table just created answers
// NotServingRegion until its regions are assigned.
func (c *Client) waitServed(ctx context.Context, table string) error {
	c.regions.removeTable(table)
	return c.retry(ctx, "waitServed", func(ctx context.Context) error {
		row := []byte{}
		for {
			r, err := c.locate(ctx, table, row)
			if err != nil {
				return err
			}
			// A Get of a row of the region proves it is open there.
			err = c.call(ctx, r.addr, rpc.ClientService, "Get", &pb.GetRequest{Region: r.specifier(), Get: getProto(probeRow(r.start), "", true)}, &pb.GetResponse{})
			if err != nil {
				c.relocate(r, err)
				return err
			}
			if len(r.end) == 0 {
				return nil
			}
			row = r.end
		}
	})
}

// probeRow is a row inside a region starting at start (the empty start key is no row).
func probeRow(start []byte) []byte {
	if len(start) == 0 {
		return []byte{0}
	}
	return start
}

// MoveRegion asks the master to move the region of table holding row to another region server
// (the master picks one) and waits until the region is open there. It returns the address of the
// server serving it now. The region is closed on its old server meanwhile: calls to it fail
// there with NotServingRegionException or RegionMovedException, and the client looks the region
// up again in hbase:meta. With no other live region server there is nowhere to move to:
// ErrNoOtherServer (use ReopenRegion to close and reopen a region in place).
func (c *Client) MoveRegion(ctx context.Context, table string, row []byte) (string, error) {
	r, err := c.freshRegion(ctx, table, row)
	if err != nil {
		return "", fmt.Errorf("move %s region of %q: %w", table, row, err)
	}
	enc := encodedName(r)
	if enc == "" {
		return "", fmt.Errorf("move %s region %q: %w: no encoded name", table, r.name, ErrMalformed)
	}
	err = c.masterCall(ctx, "MoveRegion", &pb.MoveRegionRequest{
		Region: &pb.RegionSpecifier{Type: pb.RegionSpecifier_ENCODED_REGION_NAME.Enum(), Value: []byte(enc)},
	}, &pb.MoveRegionResponse{})
	if err != nil {
		return "", fmt.Errorf("move %s region %q: %w", table, r.name, err)
	}
	// The master answers once the move procedure finished (HBase 2.x waits for it), or at once
	// when it found no server to move to: then the region is still open where it was.
	moved, err := c.waitReopened(ctx, table, row, r)
	if err != nil {
		return "", fmt.Errorf("move %s region %q: %w", table, r.name, err)
	}
	if moved.addr == r.addr {
		return "", fmt.Errorf("move %s region %q: %w: still on %s", table, r.name, ErrNoOtherServer, r.addr)
	}
	return moved.addr, nil
}

// ReopenRegion closes the region of table holding row (the master's UnassignRegion) and opens it
// again (AssignRegion) on a server of the master's choice, often the same one, and waits until
// it is served. In between the region is offline: calls to it fail with ErrNotServingRegion
// internally and are retried. It returns the address serving the region now.
func (c *Client) ReopenRegion(ctx context.Context, table string, row []byte) (string, error) {
	r, err := c.freshRegion(ctx, table, row)
	if err != nil {
		return "", fmt.Errorf("reopen %s region of %q: %w", table, row, err)
	}
	spec := &pb.RegionSpecifier{Type: pb.RegionSpecifier_REGION_NAME.Enum(), Value: r.name}
	if err := c.masterCall(ctx, "UnassignRegion", &pb.UnassignRegionRequest{Region: spec}, &pb.UnassignRegionResponse{}); err != nil {
		return "", fmt.Errorf("reopen %s region %q: unassign: %w", table, r.name, err)
	}
	if err := c.masterCall(ctx, "AssignRegion", &pb.AssignRegionRequest{Region: spec}, &pb.AssignRegionResponse{}); err != nil {
		return "", fmt.Errorf("reopen %s region %q: assign: %w", table, r.name, err)
	}
	now, err := c.waitReopened(ctx, table, row, nil)
	if err != nil {
		return "", fmt.Errorf("reopen %s region %q: %w", table, r.name, err)
	}
	return now.addr, nil
}

// freshRegion locates the region of table holding row in hbase:meta, not in the cache.
func (c *Client) freshRegion(ctx context.Context, table string, row []byte) (*region, error) {
	var r *region
	err := c.retry(ctx, "locate", func(ctx context.Context) error {
		if old := c.regions.lookup(table, row); old != nil {
			c.regions.remove(old)
		}
		var err error
		r, err = c.locate(ctx, table, row)
		return err
	})
	return r, err
}

// waitReopened waits until the region of table holding row is open and answers a read; when
// from is not nil and meta still shows it on from's server, it waits up to a few seconds for a
// move to show (and returns the region where it is after that).
func (c *Client) waitReopened(ctx context.Context, table string, row []byte, from *region) (*region, error) {
	settle := time.Now().Add(5 * time.Second)
	var r *region
	err := c.retry(ctx, "waitReopened", func(ctx context.Context) error {
		var err error
		r, err = c.freshRegion(ctx, table, row)
		if err != nil {
			return err
		}
		if from != nil && r.addr == from.addr && time.Now().Before(settle) {
			return fmt.Errorf("%w: region %q still on %s", ErrNotServingRegion, r.name, r.addr)
		}
		err = c.call(ctx, r.addr, rpc.ClientService, "Get", &pb.GetRequest{Region: r.specifier(), Get: getProto(probeRow(r.start), "", true)}, &pb.GetResponse{})
		c.relocate(r, err)
		return err
	})
	return r, err
}

// encodedName returns the encoded name of r: from its info, else from its region name
// ("<table>,<start>,<id>.<encoded>.").
func encodedName(r *region) string {
	if r.info != nil && r.info.GetRegionEncodedName() != "" {
		return r.info.GetRegionEncodedName()
	}
	n := string(r.name)
	if !strings.HasSuffix(n, ".") {
		return ""
	}
	n = n[:len(n)-1]
	i := strings.LastIndexByte(n, '.')
	if i < 0 {
		return ""
	}
	return n[i+1:]
}
