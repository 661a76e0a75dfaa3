package node

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/examples/socorro/collector"
	"github.com/gridmap/gridmap/examples/socorro/gridstore"
	"github.com/gridmap/gridmap/examples/socorro/processor"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/elasticsearch"
	"github.com/gridmap/gridmap/mapstore/hbase"
)

// Defaults of the external stores.
const (
	// DefaultESIndex is Socorro's index pattern: one index of processed crashes a week.
	DefaultESIndex = "socorro%Y%W"
	// DefaultHBaseTable is the table of raw crashes (annotations, metadata and dumps).
	DefaultHBaseTable = "crash_reports"
	// hbaseMOBThreshold: dumps of at least this size live in HBase's MOB files, away from the
	// region's compactions.
	hbaseMOBThreshold = 100 << 10
	// storeRetryMax caps the wait between two write-behind tries of an unreachable store, so
	// that the maps catch up within seconds of its return (mapstore's default is 30s).
	storeRetryMax = 5 * time.Second
)

// esMappings indexes the fields the pages and a Socorro user search and aggregate on; the rest
// of a processed crash (notes, checksums) stays in _source only.
const esMappings = `{"dynamic":false,"properties":{
	"uuid":{"type":"keyword"},"product":{"type":"keyword"},"version":{"type":"keyword"},
	"release_channel":{"type":"keyword"},"build":{"type":"keyword"},
	"date_processed":{"type":"date"},"completed_datetime":{"type":"date"},
	"os_name":{"type":"keyword"},"cpu_arch":{"type":"keyword"},"reason":{"type":"keyword"},
	"signature":{"type":"keyword"},"crashing_module":{"type":"keyword"},
	"mdsw_status_string":{"type":"keyword"}}}`

// processedCodec is the codec of the processedCrashes map's values: the map's default.
var processedCodec = dmap.DefaultCodec[*processor.Crash]()

// esDocument turns a processedCrashes value (msgpack) into the JSON document Socorro indexes.
func esDocument(_, value []byte) ([]byte, error) {
	c, err := processedCodec.Decode(value)
	if err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// esValue turns a stored document back into a processedCrashes value.
func esValue(_, source []byte) ([]byte, error) {
	var c processor.Crash
	if err := json.Unmarshal(source, &c); err != nil {
		return nil, fmt.Errorf("processed crash document: %w", err)
	}
	return processedCodec.Encode(&c)
}

// crashKeyTime is the index time of a crash: the submission date its ID ends with.
func crashKeyTime(key []byte) (time.Time, error) {
	t, ok := collector.CrashIDDate(string(key))
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a crash ID", key)
	}
	return t, nil
}

// esConfig completes the node's Elasticsearch configuration with what the processed crashes
// need.
func esConfig(c elasticsearch.Config) elasticsearch.Config {
	if c.Index == "" {
		c.Index = DefaultESIndex
	}
	c.KeyTime = crashKeyTime
	if c.Mappings == nil {
		c.Mappings = json.RawMessage(esMappings)
	}
	c.Document, c.Value = esDocument, esValue
	return c
}

// openStores opens the maps' external stores: processed crashes in Elasticsearch and raw
// crashes in HBase when configured. Every other map has no store: it lives in the member's data
// folder (gridmap Config.DataDir, set by Start from DataDir), which every replica persists and a
// restarted cluster restores, or in memory only without a DataDir. (A per-node write-behind
// store would not do: after partitions moved, a node's store holds crashes its member no longer
// owns and misses those it gained.) It returns the maps' configurations; what it opened is released by Close (or by
// Start when it fails), through n.closers.
func (n *Node) openStores(ctx context.Context) (map[string]dmap.MapConfig, error) {
	cfg := n.cfg
	maps := map[string]dmap.MapConfig{}
	persist := mapstore.Config{WriteDelay: cfg.WriteDelay, RetryMax: storeRetryMax}
	if cfg.Elasticsearch != nil {
		ec := esConfig(*cfg.Elasticsearch)
		if ec.Logger == nil {
			ec.Logger = n.log.With("store", "elasticsearch")
		}
		s, err := elasticsearch.New(ec)
		if err != nil {
			return nil, fmt.Errorf("node: elasticsearch: %w", err)
		}
		n.es = s
		maps[ProcessedMap] = dmap.MapConfig{Store: s, Loader: readThrough{s}, Persistence: persist}
	}
	if cfg.HBase != nil {
		hc := *cfg.HBase
		if hc.Logger == nil {
			hc.Logger = n.log.With("store", "hbase")
		}
		c, err := hbase.NewClient(hc)
		if err != nil {
			return nil, fmt.Errorf("node: hbase: %w", err)
		}
		n.closers = append(n.closers, c.Close)
		// NewStore creates the table when it is missing: a node started while HBase is down
		// cannot know its table, so it fails to start (unlike a store that goes down later).
		s, err := hbase.NewStore(ctx, c, hbase.StoreConfig{
			Table:        cfg.HBaseTable,
			Family:       "raw_data",
			Keys:         hbase.SocorroKeys{},
			CreateTable:  true,
			TableOptions: hbase.TableOptions{SplitKeys: hbase.SocorroKeys{}.SplitKeys(), MOBThreshold: hbaseMOBThreshold},
		})
		if err != nil {
			return nil, fmt.Errorf("node: hbase: %w", err)
		}
		maps[gridstore.ReportsMap] = dmap.MapConfig{Store: s, Loader: readThrough{s}, Persistence: persist}
	}
	return maps, nil
}

// readThrough is an external store as the maps' loader: it reads a crash missing from memory
// (evicted, or from before a restart) but hides the store's KeyLoader, so that a map's first
// use does not load every crash the store holds (weeks of processed crashes, terabytes of
// dumps) into the grid: only the crashes asked for come back.
type readThrough struct{ l mapstore.Loader }

func (r readThrough) Load(ctx context.Context, key []byte) ([]byte, bool, error) {
	return r.l.Load(ctx, key)
}
