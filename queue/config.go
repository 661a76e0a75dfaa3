package queue

import (
	"fmt"

	"github.com/gridmap/gridmap/internal/configerr"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/mapstore"
)

// Config configures one queue (gridmap.Config.Queues, by queue name). Every member must
// configure a queue the same way: the owner of the queue's partition applies it. A queue not
// configured gets the zero Config: unbounded, in memory. A queue has as many synchronous
// backups as the member's maps (gridmap.Config.Backups): it is kept with them.
type Config struct {
	// Capacity is the most items the queue holds: Offer on a full queue fails with
	// ErrQueueFull, OfferWait and Put wait for room. 0 (the default) means no bound but the
	// memory of the owner and its backups: size the members' memory for the longest queue you
	// expect, or set a capacity.
	Capacity int
	// Store persists the queue's items, so that the queue outlives a full cluster restart. The
	// queue's entries are written to it through the maps' write-behind machinery (mapstore),
	// with Persistence's settings: keys are the queue's own ("h" for the head and tail, "i"
	// and an 8-byte big-endian sequence number for each item), values the items' encodings.
	// To be read back at the next start the store must also implement mapstore.Loader and
	// mapstore.KeyLoader (mapstore/memstore and mapstore/pebblestore do). Give each queue its
	// own store (or table): the keys of two queues would collide. nil (the default): the
	// queue lives in memory only.
	Store mapstore.Store
	// Persistence is the write-through or write-behind configuration of Store (mapstore.Config:
	// WriteDelay 0, the default, writes every change through before it is acknowledged).
	Persistence mapstore.Config
}

// WithDefaults returns c with mapstore's defaults filled into Persistence.
func (c Config) WithDefaults() Config {
	c.Persistence = c.Persistence.WithDefaults()
	return c
}

// Validate reports every problem of c.WithDefaults() in one error wrapping ErrInvalidConfig, or
// nil.
func (c Config) Validate() error {
	var errs []error
	if c.Capacity < 0 {
		errs = append(errs, fmt.Errorf("negative Capacity %d (0 means no bound)", c.Capacity))
	}
	if err := c.mapConfig().Validate(); err != nil {
		errs = append(errs, configerr.Problems(err, engine.ErrInvalidConfig)...)
	}
	return configerr.Join(ErrInvalidConfig, errs)
}

// mapConfig is the configuration of the queue's structure map.
func (c Config) mapConfig() engine.MapConfig {
	return engine.MapConfig{Store: c.Store, Persistence: c.Persistence}.WithDefaults()
}
