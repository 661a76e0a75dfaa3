package dmap

import (
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/mapstore"
)

// MapConfig configures one map on a member (gridmap.Config.Maps). Every member must configure
// a map the same way (pass the same Maps everywhere): the owner of a partition stores its
// entries, and its backups keep the same write-behind queue so that a promoted backup goes on
// storing.
type MapConfig struct {
	// Store persists the map's entries. nil: the map lives in memory only.
	Store mapstore.Store
	// Loader reads entries missing from memory (read-through) and, if it also implements
	// mapstore.KeyLoader, loads the store's keys at the map's first use. nil: Store is used if it
	// implements mapstore.Loader.
	Loader mapstore.Loader
	// Persistence is the write-through or write-behind configuration (mapstore.Config: WriteDelay
	// 0 means write-through).
	Persistence mapstore.Config
}

// WithDefaults returns c with mapstore's defaults filled into Persistence (Store and Loader have
// none: nil means none).
func (c MapConfig) WithDefaults() MapConfig { return MapConfig(engine.MapConfig(c).WithDefaults()) }

// Validate reports every problem of c.WithDefaults() in one error wrapping ErrInvalidConfig, or
// nil. gridmap.Config.Validate checks every map with it.
func (c MapConfig) Validate() error { return engine.MapConfig(c).Validate() }
