package hbase

import (
	"context"
	"errors"
	"fmt"
	"strconv"

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
