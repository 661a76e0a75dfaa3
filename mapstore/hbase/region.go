package hbase

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
)

// metaTable is the catalog table: one row per region of every other table, keyed by region
// name ("<table>,<start key>,<region id>.<encoded name>.").
const metaTable = "hbase:meta"

// region is one region's location: the rows [start, end) of a table, served by addr.
type region struct {
	table      string
	name       []byte // the region name: what a RegionSpecifier of type REGION_NAME carries
	start, end []byte // end empty: up to the end of the table
	addr       string // "host:port" of the region server
	info       *pb.RegionInfo
}

func (r *region) contains(row []byte) bool {
	return bytes.Compare(row, r.start) >= 0 && (len(r.end) == 0 || bytes.Compare(row, r.end) < 0)
}

func (r *region) specifier() *pb.RegionSpecifier {
	return &pb.RegionSpecifier{Type: pb.RegionSpecifier_REGION_NAME.Enum(), Value: r.name}
}

// tableName splits "namespace:qualifier" ("default" when there is no namespace).
func tableName(table string) *pb.TableName {
	ns, q, ok := strings.Cut(table, ":")
	if !ok {
		ns, q = "default", table
	}
	return &pb.TableName{Namespace: []byte(ns), Qualifier: []byte(q)}
}

// tableString is the inverse of tableName: the name as hbase:meta rows spell it (no
// "default:" prefix).
func tableString(t *pb.TableName) string {
	if t == nil {
		return ""
	}
	if string(t.GetNamespace()) == "default" {
		return string(t.GetQualifier())
	}
	return string(t.GetNamespace()) + ":" + string(t.GetQualifier())
}

// metaSearchKey is where a reversed scan of hbase:meta starts to find the region of row: the
// greatest region name that sorts at or before it is the region whose start key is the greatest
// one not after row (region ids are at most 14 decimal digits, so the nines sort after all).
func metaSearchKey(table string, row []byte) []byte {
	k := make([]byte, 0, len(table)+len(row)+16)
	k = append(k, table...)
	k = append(k, ',')
	k = append(k, row...)
	return append(k, ",99999999999999"...)
}

// regionName builds the name of a region from its info: "<table>,<start>,<id>" followed, for
// every region but the first meta region, by ".<encoded>.".
func regionName(ri *pb.RegionInfo) []byte {
	n := []byte(tableString(ri.GetTableName()))
	n = append(n, ',')
	n = append(n, ri.GetStartKey()...)
	n = append(n, ',')
	n = strconv.AppendUint(n, ri.GetRegionId(), 10)
	if enc := ri.GetRegionEncodedName(); enc != "" && tableString(ri.GetTableName()) != metaTable {
		n = append(n, '.')
		n = append(n, enc...)
		n = append(n, '.')
	}
	return n
}

// pbMagic prefixes the protobuf values HBase keeps in hbase:meta.
var pbMagic = []byte("PBUF")

// parseMetaRow reads a region's location from its hbase:meta row (family "info": regioninfo,
// server, state). It returns ErrNotServingRegion when the region is not open anywhere (being
// assigned, split or offline): the caller retries later.
func parseMetaRow(res *pb.Result) (*region, error) {
	var rowKey, infoBytes []byte
	var server, state string
	for _, c := range res.GetCell() {
		if string(c.GetFamily()) != "info" {
			continue
		}
		rowKey = c.GetRow()
		switch string(c.GetQualifier()) {
		case "regioninfo":
			infoBytes = c.GetValue()
		case "server":
			server = string(c.GetValue())
		case "state":
			state = string(c.GetValue())
		}
	}
	if infoBytes == nil {
		return nil, fmt.Errorf("%w: hbase:meta row %q has no info:regioninfo", ErrMalformed, rowKey)
	}
	if !bytes.HasPrefix(infoBytes, pbMagic) {
		return nil, fmt.Errorf("%w: hbase:meta row %q: info:regioninfo lacks the PBUF prefix", ErrMalformed, rowKey)
	}
	ri := &pb.RegionInfo{}
	if err := proto.Unmarshal(infoBytes[len(pbMagic):], ri); err != nil {
		return nil, fmt.Errorf("%w: hbase:meta row %q: info:regioninfo: %v", ErrMalformed, rowKey, err)
	}
	r := &region{
		table: tableString(ri.GetTableName()),
		name:  rowKey,
		start: ri.GetStartKey(),
		end:   ri.GetEndKey(),
		addr:  server,
		info:  ri,
	}
	if ri.GetOffline() || ri.GetSplit() {
		return r, fmt.Errorf("%w: region %q is offline or split", ErrNotServingRegion, rowKey)
	}
	if server == "" || (state != "" && state != "OPEN") {
		return r, fmt.Errorf("%w: region %q is not open (state %q, server %q)", ErrNotServingRegion, rowKey, state, server)
	}
	return r, nil
}

// regionCache holds the known region locations of each table, sorted by start key. It is safe
// for concurrent use.
type regionCache struct {
	mu     sync.Mutex
	tables map[string][]*region
}

func newRegionCache() *regionCache { return &regionCache{tables: make(map[string][]*region)} }

// lookup returns the cached region of table holding row, or nil.
func (c *regionCache) lookup(table string, row []byte) *region {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.tables[table]
	// The last region starting at or before row.
	i := sort.Search(len(rs), func(i int) bool { return bytes.Compare(rs[i].start, row) > 0 }) - 1
	if i >= 0 && rs[i].contains(row) {
		return rs[i]
	}
	return nil
}

// add caches r, dropping the cached regions it overlaps (they are older: a split or a merge
// replaced them).
func (c *regionCache) add(r *region) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.tables[r.table]
	kept := rs[:0:0]
	for _, o := range rs {
		if overlaps(o, r) {
			continue
		}
		kept = append(kept, o)
	}
	i := sort.Search(len(kept), func(i int) bool { return bytes.Compare(kept[i].start, r.start) > 0 })
	kept = append(kept, nil)
	copy(kept[i+1:], kept[i:])
	kept[i] = r
	c.tables[r.table] = kept
}

func overlaps(a, b *region) bool {
	// [a.start, a.end) and [b.start, b.end) with an empty end meaning +infinity.
	aBeforeB := len(a.end) > 0 && bytes.Compare(a.end, b.start) <= 0
	bBeforeA := len(b.end) > 0 && bytes.Compare(b.end, a.start) <= 0
	return !aBeforeB && !bBeforeA
}

// remove forgets r (if it is still cached: a newer location may have replaced it).
func (c *regionCache) remove(r *region) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.tables[r.table]
	for i, o := range rs {
		if o == r {
			c.tables[r.table] = append(rs[:i:i], rs[i+1:]...)
			return
		}
	}
}

// removeServer forgets every region served by addr (its connection failed).
func (c *regionCache) removeServer(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, rs := range c.tables {
		kept := rs[:0:0]
		for _, o := range rs {
			if o.addr != addr {
				kept = append(kept, o)
			}
		}
		c.tables[t] = kept
	}
}

// removeTable forgets every region of table.
func (c *regionCache) removeTable(table string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tables, table)
}
