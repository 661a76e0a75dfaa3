package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/gridmap/gridmap/examples/socorro/node"
	"github.com/gridmap/gridmap/mapstore/elasticsearch"
	"github.com/gridmap/gridmap/mapstore/hbase"
)

// storeFlags choose where the maps write behind: the same flags on the launcher, which passes
// them on, and on each node.
type storeFlags struct {
	store      string
	es         string
	esIndex    string
	hbase      string
	hbaseTable string
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.store, "store", "embedded", "where the maps write behind: embedded (pebble, in the data folder), elasticsearch (processed crashes; the rest embedded), hbase (raw crashes and dumps; the rest embedded), or elasticsearch,hbase (Socorro's layout)")
	fs.StringVar(&s.es, "es", "http://127.0.0.1:9200", "Elasticsearch addresses, comma-separated (with -store elasticsearch)")
	fs.StringVar(&s.esIndex, "es-index", node.DefaultESIndex, "index of the processed crashes, a pattern with strftime verbs: one index a week by default")
	fs.StringVar(&s.hbase, "hbase", "127.0.0.1:16000", "HBase master addresses, comma-separated (with -store hbase)")
	fs.StringVar(&s.hbaseTable, "hbase-table", node.DefaultHBaseTable, "table of the raw crashes, created when missing")
}

// args returns the flags as a node's command line takes them.
func (s *storeFlags) args() []string {
	return []string{"-store", s.store, "-es", s.es, "-es-index", s.esIndex, "-hbase", s.hbase, "-hbase-table", s.hbaseTable}
}

// kinds returns the external stores -store names (none for embedded).
func (s *storeFlags) kinds() ([]string, error) {
	var out []string
	for _, k := range strings.Split(s.store, ",") {
		switch k = strings.TrimSpace(k); k {
		case "embedded":
		case "elasticsearch", "hbase":
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		default:
			return nil, fmt.Errorf("-store %q: unknown store %q (want embedded, elasticsearch, hbase or elasticsearch,hbase)", s.store, k)
		}
	}
	return out, nil
}

// apply sets the node's external stores.
func (s *storeFlags) apply(c *node.Config) error {
	kinds, err := s.kinds()
	if err != nil {
		return err
	}
	for _, k := range kinds {
		switch k {
		case "elasticsearch":
			c.Elasticsearch = &elasticsearch.Config{Addresses: splitList(s.es), Index: s.esIndex}
		case "hbase":
			c.HBase = &hbase.Config{Addrs: splitList(s.hbase)}
			c.HBaseTable = s.hbaseTable
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
