package hbase

import (
	"context"
	"errors"
	"fmt"

	"github.com/gridmap/gridmap/mapstore"
)

var (
	_ mapstore.BatchStore = (*Store)(nil)
	_ mapstore.Loader     = (*Store)(nil)
	_ mapstore.AllLoader  = (*Store)(nil)
	_ mapstore.KeyLoader  = (*Store)(nil)
)

// Defaults of StoreConfig.
const (
	DefaultFamily    = "d"
	DefaultQualifier = "v"
)

// StoreConfig configures a Store: one map in one table, one cell per key.
type StoreConfig struct {
	// Table is the table holding the map, "name" or "namespace:name". Required. Use one table
	// per map: LoadAllKeys lists every row of it.
	Table string
	// Family and Qualifier name the cell holding a key's value. Defaults "d" and "v". (Socorro
	// keeps raw crashes in family "raw_data".)
	Family    string
	Qualifier string
	// Keys maps map keys to row keys and back. Default IdentityKeys; SocorroKeys for maps keyed
	// by crash ID.
	Keys RowKeys
	// CreateTable creates the table (with Family) when it is missing, in NewStore.
	CreateTable bool
	// TableOptions apply to a table CreateTable creates: SplitKeys (SocorroKeys.SplitKeys for
	// crash IDs) and MOBThreshold (for multi-megabyte values such as dumps).
	TableOptions TableOptions
}

// WithDefaults returns c with every zero field set to its default.
func (c StoreConfig) WithDefaults() StoreConfig {
	if c.Family == "" {
		c.Family = DefaultFamily
	}
	if c.Qualifier == "" {
		c.Qualifier = DefaultQualifier
	}
	if c.Keys == nil {
		c.Keys = IdentityKeys{}
	}
	return c
}

// Validate reports every problem of c (meant after WithDefaults) in one error wrapping
// ErrInvalidConfig, or nil.
func (c StoreConfig) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, errors.New("the table name is empty"))
	}
	if c.Family == "" || c.Qualifier == "" {
		errs = append(errs, errors.New("the family or qualifier is empty"))
	}
	if c.Keys == nil {
		errs = append(errs, errors.New("no RowKeys"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// Store is a mapstore backend keeping each entry of a map in one HBase cell: the row is the
// key (through StoreConfig.Keys), the value is the cell's raw bytes. Every call is idempotent
// (a put of the same value, a delete of a missing row), as the mapstore contract requires, and
// a batch (StoreAll, DeleteAll, LoadAll) is one Multi request per region server. It is safe for
// concurrent use and holds nothing of its own: close the Client, which may serve several stores,
// when they are all done.
type Store struct {
	c         *Client
	cfg       StoreConfig
	qualifier []byte
}

// NewStore returns a store of cfg's table on c, creating the table first if cfg.CreateTable.
func NewStore(ctx context.Context, c *Client, cfg StoreConfig) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CreateTable {
		if err := c.EnsureTableWith(ctx, cfg.Table, cfg.TableOptions, cfg.Family); err != nil {
			return nil, err
		}
	}
	return &Store{c: c, cfg: cfg, qualifier: []byte(cfg.Qualifier)}, nil
}

func (s *Store) put(key, value []byte) (Mutation, error) {
	row, err := s.cfg.Keys.RowKey(key)
	if err != nil {
		return Mutation{}, err
	}
	if value == nil {
		value = []byte{} // an empty value is a value: the cell exists
	}
	return Mutation{Row: row, Family: s.cfg.Family, Columns: []Column{{Qualifier: s.qualifier, Value: value}}}, nil
}

// Store implements mapstore.Store.
func (s *Store) Store(ctx context.Context, key, value []byte) error {
	m, err := s.put(key, value)
	if err != nil {
		return err
	}
	return s.c.Apply(ctx, s.cfg.Table, m)
}

// Delete implements mapstore.Store: it deletes the key's row.
func (s *Store) Delete(ctx context.Context, key []byte) error {
	row, err := s.cfg.Keys.RowKey(key)
	if err != nil {
		return err
	}
	return s.c.Apply(ctx, s.cfg.Table, Mutation{Row: row, Delete: true})
}

// StoreAll implements mapstore.BatchStore.
func (s *Store) StoreAll(ctx context.Context, keys, values [][]byte) error {
	if len(keys) != len(values) {
		return fmt.Errorf("hbase: StoreAll with %d keys and %d values", len(keys), len(values))
	}
	ms := make([]Mutation, len(keys))
	for i := range keys {
		m, err := s.put(keys[i], values[i])
		if err != nil {
			return err
		}
		ms[i] = m
	}
	return s.c.ApplyAll(ctx, s.cfg.Table, ms)
}

// DeleteAll implements mapstore.BatchStore.
func (s *Store) DeleteAll(ctx context.Context, keys [][]byte) error {
	ms := make([]Mutation, len(keys))
	for i, k := range keys {
		row, err := s.cfg.Keys.RowKey(k)
		if err != nil {
			return err
		}
		ms[i] = Mutation{Row: row, Delete: true}
	}
	return s.c.ApplyAll(ctx, s.cfg.Table, ms)
}

// Load implements mapstore.Loader.
func (s *Store) Load(ctx context.Context, key []byte) ([]byte, bool, error) {
	row, err := s.cfg.Keys.RowKey(key)
	if err != nil {
		return nil, false, err
	}
	r, found, err := s.c.Get(ctx, s.cfg.Table, row, s.cfg.Family)
	if err != nil || !found {
		return nil, false, err
	}
	v, ok := r.Value(s.cfg.Family, s.cfg.Qualifier)
	return v, ok, nil
}

// LoadAll implements mapstore.AllLoader with one multi-get.
func (s *Store) LoadAll(ctx context.Context, keys [][]byte, fn func(key, value []byte) error) error {
	rows := make([][]byte, len(keys))
	for i, k := range keys {
		row, err := s.cfg.Keys.RowKey(k)
		if err != nil {
			return err
		}
		rows[i] = row
	}
	res, err := s.c.GetMany(ctx, s.cfg.Table, rows, s.cfg.Family)
	if err != nil {
		return err
	}
	for i, r := range res {
		if v, ok := r.Value(s.cfg.Family, s.cfg.Qualifier); ok {
			if err := fn(keys[i], v); err != nil {
				return err
			}
		}
	}
	return nil
}

// LoadAllKeys implements mapstore.KeyLoader: a keys-only scan of the table (no value crosses
// the network).
func (s *Store) LoadAllKeys(ctx context.Context, fn func(key []byte) error) error {
	return s.c.Scan(ctx, s.cfg.Table, ScanOptions{Family: s.cfg.Family, KeysOnly: true, Caching: 1000}, func(r Row) error {
		if _, ok := r.Value(s.cfg.Family, s.cfg.Qualifier); !ok {
			return nil
		}
		key, err := s.cfg.Keys.MapKey(r.Key)
		if err != nil {
			return err
		}
		return fn(key)
	})
}
