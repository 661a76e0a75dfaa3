package hbase

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
)

func reg(table, start, end, addr string) *region {
	return &region{table: table, name: []byte(table + "," + start + ",1.x."), start: []byte(start), end: []byte(end), addr: addr}
}

func TestRegionCache(t *testing.T) {
	c := newRegionCache()
	a, b, d := reg("t", "", "m", "s1"), reg("t", "m", "t", "s2"), reg("t", "t", "", "s1")
	for _, r := range []*region{d, a, b} {
		c.add(r)
	}
	for _, tc := range []struct {
		row  string
		want *region
	}{{"", a}, {"a", a}, {"l\xff", a}, {"m", b}, {"s", b}, {"t", d}, {"zzz", d}} {
		if got := c.lookup("t", []byte(tc.row)); got != tc.want {
			t.Errorf("lookup %q: %v, want %v", tc.row, got, tc.want)
		}
	}
	if c.lookup("other", []byte("a")) != nil {
		t.Fatal("another table's region")
	}
	// A split of b: its daughters replace it.
	b1, b2 := reg("t", "m", "p", "s2"), reg("t", "p", "t", "s3")
	c.add(b1)
	if c.lookup("t", []byte("q")) != nil {
		t.Fatal("the split parent is still cached")
	}
	c.add(b2)
	if c.lookup("t", []byte("n")) != b1 || c.lookup("t", []byte("q")) != b2 {
		t.Fatal("daughters not found")
	}
	c.remove(b1)
	if c.lookup("t", []byte("n")) != nil || c.lookup("t", []byte("q")) != b2 {
		t.Fatal("remove")
	}
	c.removeServer("s1")
	if c.lookup("t", []byte("a")) != nil || c.lookup("t", []byte("z")) != nil || c.lookup("t", []byte("q")) != b2 {
		t.Fatal("removeServer")
	}
	// A merge covering everything replaces the rest.
	all := reg("t", "", "", "s4")
	c.add(all)
	if c.lookup("t", []byte("q")) != all || len(c.tables["t"]) != 1 {
		t.Fatalf("merge: %d regions cached", len(c.tables["t"]))
	}
}

func TestMetaNames(t *testing.T) {
	if got := string(metaSearchKey("ns:t", []byte("row"))); got != "ns:t,row,99999999999999" {
		t.Fatal(got)
	}
	meta := &pb.RegionInfo{RegionId: proto.Uint64(1), TableName: tableName("hbase:meta"), RegionEncodedName: proto.String("1588230740")}
	if got := string(regionName(meta)); got != "hbase:meta,,1" {
		t.Fatal(got)
	}
	user := &pb.RegionInfo{RegionId: proto.Uint64(1700000000000), TableName: tableName("t"), StartKey: []byte("k"), RegionEncodedName: proto.String("abc")}
	if got := string(regionName(user)); got != "t,k,1700000000000.abc." {
		t.Fatal(got)
	}
	if tableString(tableName("t")) != "t" || tableString(tableName("ns:t")) != "ns:t" {
		t.Fatal("table names")
	}
}

func metaResult(row string, info []byte, server, state string) *pb.Result {
	res := &pb.Result{}
	add := func(q string, v []byte) {
		res.Cell = append(res.Cell, &pb.Cell{Row: []byte(row), Family: []byte("info"), Qualifier: []byte(q), Value: v})
	}
	if info != nil {
		add("regioninfo", info)
	}
	if server != "" {
		add("server", []byte(server))
	}
	if state != "" {
		add("state", []byte(state))
	}
	return res
}

func TestParseMetaRow(t *testing.T) {
	ri, _ := proto.Marshal(&pb.RegionInfo{RegionId: proto.Uint64(5), TableName: tableName("t"), StartKey: []byte("a"), EndKey: []byte("m")})
	info := append([]byte("PBUF"), ri...)
	r, err := parseMetaRow(metaResult("t,a,5.x.", info, "h:16020", "OPEN"))
	if err != nil || r.addr != "h:16020" || string(r.start) != "a" || string(r.end) != "m" || r.table != "t" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := parseMetaRow(metaResult("t,a,5.x.", info, "", "OPENING")); !errors.Is(err, ErrNotServingRegion) {
		t.Fatalf("unassigned: %v", err)
	}
	split, _ := proto.Marshal(&pb.RegionInfo{RegionId: proto.Uint64(5), TableName: tableName("t"), Split: proto.Bool(true), Offline: proto.Bool(true)})
	if _, err := parseMetaRow(metaResult("t,,5.x.", append([]byte("PBUF"), split...), "h:1", "")); !errors.Is(err, ErrNotServingRegion) {
		t.Fatalf("split parent: %v", err)
	}
	for name, res := range map[string]*pb.Result{
		"no regioninfo": metaResult("r", nil, "h:1", ""),
		"no magic":      metaResult("r", ri, "h:1", ""),
		"garbage":       metaResult("r", []byte("PBUF\xff\xff\xff"), "h:1", ""),
		"missing table": metaResult("r", []byte("PBUF\x08\x05"), "h:1", ""),
	} {
		if _, err := parseMetaRow(res); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("abc"), []byte("abd")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte("\xff\xff"), nil},
		{[]byte{}, nil},
	} {
		if got := prefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("prefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSocorroKeys(t *testing.T) {
	k := SocorroKeys{}
	key := []byte("de1bb258-cbbf-4589-a673-34f800160918/dump/upload_file_minidump")
	row, err := k.RowKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d160918de1bb258-cbbf-4589-a673-34f800160918/dump/upload_file_minidump"; string(row) != want {
		t.Fatalf("row %s, want %s", row, want)
	}
	back, err := k.MapKey(row)
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("MapKey %q %v", back, err)
	}
	day := k.DayPrefixes(time.Date(2016, 9, 18, 12, 0, 0, 0, time.UTC))
	if len(day) != 16 || string(day[13]) != "d160918" || !bytes.HasPrefix(row, day[13]) {
		t.Fatalf("day prefixes %q", day)
	}
	for _, bad := range []string{"", "short", "DE1BB258-cbbf-4589-a673-34f800160918", "de1bb258xcbbf-4589-a673-34f800160918", "de1bb258-cbbf-4589-a673-34f800169918"} {
		if _, err := k.RowKey([]byte(bad)); !errors.Is(err, ErrBadKey) {
			t.Errorf("RowKey(%q): %v", bad, err)
		}
	}
	for _, bad := range []string{"x", "e160918de1bb258-cbbf-4589-a673-34f800160918", "d160917de1bb258-cbbf-4589-a673-34f800160918"} {
		if _, err := k.MapKey([]byte(bad)); !errors.Is(err, ErrBadKey) {
			t.Errorf("MapKey(%q): %v", bad, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no address: %v", err)
	}
	if err := (Config{Addrs: []string{"h:16000"}}).WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{Addrs: []string{""}, DialTimeout: -1, OpTimeout: -1, RetryInitial: time.Second, RetryMax: time.Millisecond, MaxRequestBytes: -1}
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	if _, err := NewClient(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	if err := (StoreConfig{}).WithDefaults().Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("store without table: %v", err)
	}
}

func TestServerErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		class, msg string
		want       error
		retry      bool
	}{
		{"org.apache.hadoop.hbase.NotServingRegionException", "", ErrNotServingRegion, true},
		{"org.apache.hadoop.hbase.exceptions.RegionMovedException", "", ErrNotServingRegion, true},
		{"org.apache.hadoop.hbase.RegionTooBusyException", "", ErrServerBusy, true},
		{"org.apache.hadoop.hbase.TableNotFoundException", "", ErrTableNotFound, false},
		{"org.apache.hadoop.hbase.DoNotRetryIOException", "Cell[big/f:v/LATEST_TIMESTAMP/Put/vlen=20971520/seqid=0] with size 20971549 exceeds limit of 10485760 bytes", ErrValueTooLarge, false},
		{"java.io.IOException", "boom", ErrRemote, false},
	} {
		err := newServerError(tc.class, tc.msg, false)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrRemote) || retryable(err) != tc.retry {
			t.Errorf("%s: %v (retryable %v)", tc.class, err, retryable(err))
		}
	}
}
