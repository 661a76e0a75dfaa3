package gridmaptest

import (
	"strconv"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
)

// Defaults of a test cluster.
const (
	// DefaultPartitionCount is fewer partitions than gridmap's 271: a cluster starts, moves and
	// recovers them faster, and tests rarely depend on their number.
	DefaultPartitionCount = 71
	// DefaultTimeout bounds each wait of the helper: the start of the cluster, a join, a
	// graceful leave, WaitSafe.
	DefaultTimeout = 60 * time.Second
)

// An Option changes how NewCluster configures the cluster.
type Option func(*options)

type options struct {
	backups    int
	backupsSet bool
	partitions int
	maps       map[string]dmap.MapConfig
	configure  []func(i int, cfg *gridmap.Config)
	timeout    time.Duration
	sockets    bool
}

func newOptions(opts []Option) options {
	o := options{partitions: DefaultPartitionCount, timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithBackups sets the number of backups of every partition (gridmap.Config.BackupCount; 0
// means none). Default: gridmap's default, one.
func WithBackups(n int) Option {
	return func(o *options) { o.backups, o.backupsSet = n, true }
}

// WithPartitionCount sets the number of partitions. Default DefaultPartitionCount.
func WithPartitionCount(n int) Option {
	return func(o *options) { o.partitions = n }
}

// WithMap configures the map called name on every member (gridmap.Config.Maps): its store,
// loader and write-behind settings.
func WithMap(name string, mc dmap.MapConfig) Option {
	return func(o *options) {
		if o.maps == nil {
			o.maps = map[string]dmap.MapConfig{}
		}
		o.maps[name] = mc
	}
}

// WithConfig changes the configuration of member i (0 for the first member NewCluster starts,
// then in start order, members added by Join included) after the helper set its own fields: a
// logger, other timings, a memory budget. The helper's seeds, gossip address and ExpectMembers
// are what make the members find each other; change them only with care.
func WithConfig(f func(i int, cfg *gridmap.Config)) Option {
	return func(o *options) { o.configure = append(o.configure, f) }
}

// WithTimeout bounds each wait of the helper (start, join, leave, WaitSafe). Default
// DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithSockets runs the members over loopback sockets (TCP, and UDP for gossip, on free ports)
// instead of in-memory networks: for a test that needs real addresses, for example to start a
// process of its own that joins the cluster. Default: in memory.
func WithSockets() Option {
	return func(o *options) { o.sockets = true }
}

// config is member i's configuration.
func (o options) config(i int, gossip string, seeds []string, expect int) gridmap.Config {
	cfg := gridmap.Config{
		Name:           "m" + strconv.Itoa(i),
		GossipBindAddr: gossip,
		Seeds:          seeds,
		ExpectMembers:  expect,
		PartitionCount: o.partitions,
		Timings:        gridmap.LocalTimings(),
		Maps:           o.maps,
	}
	if o.backupsSet {
		cfg.BackupCount = new(o.backups)
	}
	for _, f := range o.configure {
		f(i, &cfg)
	}
	return cfg
}
