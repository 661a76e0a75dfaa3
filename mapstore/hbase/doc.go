// Package hbase is a mapstore backend on Apache HBase (2.5 and later), with a small HBase
// client of its own that speaks HBase's native RPC protocol over TCP.
//
// # Why a client of our own
//
// The usual Go client (tsuna/gohbase) is not available to this project, and HBase's REST and
// Thrift gateways add a hop and base64 or framing costs to multi-megabyte values. The native
// protocol is small for what a map store needs: protobuf messages (internal/pb, written from
// HBase's protocol documentation with HBase's field numbers) in length-prefixed frames with call
// IDs (internal/rpc).
//
// # What the client does
//
//   - One TCP connection per server and service, with any number of calls in flight on it; a
//     broken connection fails its calls and is dialled again by the next one.
//   - hbase:meta is found through the connection registry of HBase 2.5+
//     (ClientMetaService.GetMetaRegionLocations on a master): no ZooKeeper client is needed.
//   - Regions are looked up in hbase:meta and cached; a region that moved, split or closed
//     (NotServingRegionException, RegionMovedException, ...) is dropped from the cache and looked
//     up again, and the call retried with exponential back-off until the caller's deadline
//     (Config.OpTimeout when the context has none).
//   - Get, GetMany, Apply (put or delete one row), ApplyAll (a batch as one Multi request per
//     region server, split at Config.MaxRequestBytes, sent concurrently; only the failed actions
//     are retried), Scan (row range or prefix, optionally keys only, resumed after its last row
//     when a region moves), CreateTable / EnsureTable (TableOptions: pre-split, MOB families), DeleteTable and
//     SplitRegion through the master.
//   - Values travel as raw protobuf bytes: no base64, no size limit of the client's own. HBase
//     refuses cells above hbase.server.keyvalue.maxsize (10 MiB by default; ErrValueTooLarge):
//     raise it on the servers for 20 MB crash dumps.
//   - Server exceptions are *ServerError values matched with errors.Is against the sentinels of
//     errors.go.
//
// Authentication is SIMPLE only (no Kerberos/SASL) and there is no TLS: run it on a trusted
// network, as HBase's own simple mode assumes.
//
// # The store
//
// Store keeps each map entry in one cell (StoreConfig.Family:Qualifier) of the row
// StoreConfig.Keys gives for the key. SocorroKeys reproduces Socorro's raw crash layout: rows
// salted by the crash ID's first hex digit and prefixed by the submission date, so writes spread
// over 16 regions and one day is 16 prefix scans.
//
// # Tests
//
// Unit tests (framing, calls in flight, malformed answers, region cache, keys) need no server.
// The integration tests need a real HBase: ".ci/hbase.sh start" runs a standalone HBase 2.6.3
// and GRIDMAP_HBASE_ADDR=$(.ci/hbase.sh addr) points the tests at it; without it they skip
// (in CI, with CI=true, they fail). GRIDMAP_HBASE_CTL=.ci/hbase.sh also runs the test that stops
// and restarts the server under a write-behind map. BenchmarkWriteBehind measures Socorro-sized
// writes; FuzzDecodeResponse (internal/rpc) fuzzes the response decoder.
package hbase
