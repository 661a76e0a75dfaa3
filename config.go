package gridmap

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridmap/gridmap/discovery"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/configerr"
	"github.com/gridmap/gridmap/internal/control"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/partition"
	"github.com/gridmap/gridmap/queue"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultBindAddr         = "127.0.0.1:0"
	DefaultGossipBindAddr   = "127.0.0.1:0"
	DefaultExpectMembers    = 1
	DefaultPartitionCount   = partition.DefaultCount
	DefaultBackupCount      = 1
	MaxBackupCount          = 6
	DefaultMaxVoters        = 3
	DefaultOperationTimeout = 30 * time.Second
	DefaultMaxFrameSize     = 64 << 20
	DefaultRestoreTimeout   = engine.DefaultRestoreTimeout
)

// Config configures a member. Every configuration of this module follows one contract: zero
// fields take the documented defaults (WithDefaults fills them in), and Validate reports every
// problem of c.WithDefaults() in one error wrapping the package's ErrInvalidConfig, so the zero
// value is valid unless a field says it is required; constructors (here Start) call Validate
// and start nothing when it fails. Every member of a cluster must agree on PartitionCount and
// BackupCount.
type Config struct {
	// Name labels the member in logs. Default: its generated ID.
	Name string
	// BindAddr is the TCP host:port for member-to-member traffic (map operations, backups,
	// migrations and raft). Port 0 picks a free port. Default "127.0.0.1:0".
	BindAddr string
	// AdvertiseAddr is the host:port other members dial. Default: the bound address (which
	// must then not be a wildcard address).
	AdvertiseAddr string
	// GossipBindAddr is the memberlist host:port (TCP and UDP). Port 0 picks a free port.
	// Default "127.0.0.1:0".
	GossipBindAddr string
	// GossipAdvertiseAddr is the memberlist address other members use. Default: the bound one.
	GossipAdvertiseAddr string
	// Seeds are gossip addresses of members to join. Ignored when Discovery is set. Empty (and
	// no Discovery), or naming only this member: this member starts a new cluster. When the
	// seeds name other members and none of them answers, the member keeps trying to join them
	// (Start waits, up to its context) and never founds a cluster of its own, unless
	// BootstrapWithoutSeeds is set.
	Seeds []string
	// Discovery finds seeds at start, for example discovery.DNS for a Kubernetes headless
	// service. Default: discovery.Static(Seeds).
	Discovery discovery.Discovery
	// ExpectMembers is how many members must see each other before the first of them creates
	// the cluster (bootstrap-expect). Members that start together must all use the same value.
	// Default 1.
	ExpectMembers int
	// PartitionCount is the number of partitions of every map. Default 271.
	PartitionCount int
	// BackupCount is the number of backups of every partition, on members other than its owner,
	// 0..6: new(0) for none, new(2) for two. Default (nil): 1, so that a Config that does not
	// mention backups survives a member's crash without losing an acknowledged write. It is a
	// pointer because an int could not tell "not set" (the default of 1) from an explicit 0.
	BackupCount *int
	// AsyncBackups makes writes return once the owner applied them, updating backups in the
	// background. Default false: writes wait for every backup. Listeners are then told of a
	// write once the owner applied it and queued it for the backups (a listener that reads the
	// entry finds it), and such a write, acknowledged and announced, is lost if its owner dies
	// before the backups caught up.
	AsyncBackups bool
	// MaxVoters is the number of raft voters (3 or 5); other members follow as non-voters.
	// Default 3.
	MaxVoters int
	// OperationTimeout bounds a map operation whose context has no deadline. Default 30s.
	OperationTimeout time.Duration
	// MaxFrameSize is the largest message between members, in bytes; values must fit in it with
	// room for headers. Default 64 MiB.
	MaxFrameSize int
	// Timings are the failure-detection, raft and repair timings: how fast a crashed member is
	// declared dead and its partitions served again, against how much delay the cluster
	// tolerates before it suspects a healthy member. Default (the zero value): LANTimings();
	// zero fields take their LANTimings value. See Timings for the presets.
	Timings Timings
	// BootstrapWithoutSeeds lets a member whose seeds (Seeds or Discovery) all fail to answer
	// found a new cluster of its own. Default false: a member given seeds keeps trying to join
	// them, so that a member started while the cluster is unreachable never creates a second
	// cluster beside it. A member given no seeds always founds a cluster.
	BootstrapWithoutSeeds bool
	// RecreateLostPartitions makes a partition that lost every replica (more members crashed
	// at once than it had backups, or faster than repair) come back empty at once, reported by
	// a dmap.PartitionLost event. Default false: the partition is marked lost, its operations
	// fail with dmap.ErrPartitionLost until the application calls
	// Cluster.ResetLostPartitions, so that no reader mistakes the loss for absent keys.
	RecreateLostPartitions bool
	// MemoryBudget bounds the memory this member holds for maps, queues and topics, in bytes.
	// 0 (the default): no budget. Above 95% of it, clean entries of maps with a loader are
	// evicted (least recently used first) and read through again when used; with DataDir,
	// entries of the maps persisting there are paged out: their values leave memory and are
	// read back from the folder when used, their keys stay (docs/restart.md, "Maps larger than
	// memory"). A write that would grow the member's memory past it, when nothing can be evicted
	// (dirty entries, maps without a loader or DataDir, keys of paged-out entries, structures),
	// waits for room as long as its deadline and context allow, then
	// fails with dmap.ErrMemoryLimit, applied nowhere. Reads, deletes and overwrites that do not
	// grow always pass, so that memory can be freed. A backup applies what its owner sends and
	// tells it when it is at its budget; the owner then holds growing writes of the partition
	// back, so a backup exceeds its budget at most by the writes in flight to it (one per
	// partition with synchronous backups). Partition copies are never refused. See
	// docs/operations.md.
	//
	// The budget counts, exactly (a running count kept as entries are applied, Member.MemoryUsed),
	// each entry of the partitions the member owns, backs up or receives: its key and value plus
	// 80 bytes (its metadata and index entry); and the events listener queues hold (keys,
	// values and the queue slot). The tables that hold entries also keep the bytes of replaced and removed entries
	// until they compact them, up to half the live bytes, so the memory they take is up to
	// about 1.5-1.7 times the budget (BenchmarkEntryTable in package dmap reports it as
	// mem/live), and the Go heap around it grows further before each garbage collection (GOGC,
	// GOMEMLIMIT).
	MemoryBudget int64
	// DataDir is this member's data folder: one per member, never shared by two running
	// members (the second fails to start). With it, every map that names no Store or Loader in
	// Maps (listed or not) persists to an embedded store (pebble) in the folder, on every
	// replica of each partition, and a cluster stopped and started again on the same folders,
	// with the same or another member count, gets every such map back as it was: see
	// docs/restart.md for the design and what each kind of stop keeps. Queues and topics are not
	// persisted there. Default "": those maps live in memory only.
	//
	// Each folder remembers the folders of the cluster it served in: a restarted cluster
	// restores a partition only once the folders that may hold its newest copy are present,
	// in any order and without any setting (ExpectMembers plays no part in it); see
	// RestoreTimeout and RestorePolicy for when some never come back.
	DataDir string
	// RestoreTimeout bounds how long, from the member's start, the restore of a restarted
	// cluster waits for absent data folders that the present ones remember (members not
	// started again yet). Then, under RestoreFullOnly, the operations on the partitions they
	// may hold the newest copies of fail with dmap.ErrRestoreIncomplete (naming the absent
	// folders, also in an error log) until those members start; under
	// RestorePartialMostRecent such partitions are restored from the newest copies present.
	// Default DefaultRestoreTimeout (5 minutes).
	RestoreTimeout time.Duration
	// RestorePolicy says what a restore does once RestoreTimeout passed with remembered data
	// folders absent. Default RestoreFullOnly: refuse. Cluster.AllowPartialRestore decides
	// the same for a running member.
	RestorePolicy RestorePolicy
	// Maps configures maps by name: a store for write-through or write-behind persistence, a
	// loader for read-through. Maps not listed live in memory only (or in DataDir). Every member of a cluster
	// must have the same Maps. Validate checks each with dmap.MapConfig.Validate.
	Maps map[string]dmap.MapConfig
	// Queues configures queues by name (queue.Config: capacity, store). Queues not listed are
	// unbounded and live in memory only. Every member of a cluster must have the same Queues.
	// Validate checks each with queue.Config.Validate.
	Queues map[string]queue.Config
	// Logger receives the member's logs. Default: discard.
	Logger *slog.Logger
	// Security enables TLS between members, gossip encryption and a cluster name with a join
	// secret (see Security). Default: all off.
	Security Security
	// Console serves the management console (a web page, a JSON API and Prometheus metrics) on
	// an HTTP address. Default: off.
	Console ConsoleConfig
	// Metrics, when set, receives the member's Prometheus collector (every series labelled
	// with member: Name, else the member's ID), so that an application serves gridmap's
	// metrics on its own registry and mux; the member unregisters it at Close. Members that
	// share a registry need distinct Names (or none): Start fails when the registry refuses
	// the collector. A
	// *prometheus.Registry here is also what the console's /metrics serves. Default (nil):
	// the metrics are only served by the console, when it is on.
	Metrics prometheus.Registerer
}

// backups is the number of backups c asks for: *BackupCount, DefaultBackupCount when nil.
func (c Config) backups() int {
	if c.BackupCount == nil {
		return DefaultBackupCount
	}
	return *c.BackupCount
}

// WithDefaults returns c with every zero field set to its default (Timings field by field, from
// LANTimings), as Start uses it.
func (c Config) WithDefaults() Config {
	if c.BindAddr == "" {
		c.BindAddr = DefaultBindAddr
	}
	if c.GossipBindAddr == "" {
		c.GossipBindAddr = DefaultGossipBindAddr
	}
	if c.Discovery == nil {
		c.Discovery = discovery.Static(c.Seeds)
	}
	if c.ExpectMembers == 0 {
		c.ExpectMembers = DefaultExpectMembers
	}
	if c.PartitionCount == 0 {
		c.PartitionCount = DefaultPartitionCount
	}
	// A copy of its own, so that a change to the caller's int after Start changes nothing.
	c.BackupCount = new(c.backups())
	if c.MaxVoters == 0 {
		c.MaxVoters = DefaultMaxVoters
	}
	if c.OperationTimeout == 0 {
		c.OperationTimeout = DefaultOperationTimeout
	}
	if c.RestoreTimeout == 0 {
		c.RestoreTimeout = DefaultRestoreTimeout
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Timings = c.Timings.WithDefaults()
	return c
}

// Validate reports every problem of c.WithDefaults() in one error wrapping ErrInvalidConfig:
// the member's own settings (addresses and seeds included), the transport's limits, the
// timings with the rules of the parts that use them (raft's own, the owner lease against the
// raft timings, memberlist's, the map service's: see Timings.LeaseDuration) and each map of
// Maps (dmap.MapConfig.Validate, named Maps["name"]). Start calls it first, and starts nothing
// when it fails.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	addrs := []struct{ name, addr string }{
		{"BindAddr", c.BindAddr}, {"GossipBindAddr", c.GossipBindAddr},
		{"AdvertiseAddr", c.AdvertiseAddr}, {"GossipAdvertiseAddr", c.GossipAdvertiseAddr},
	}
	for _, a := range addrs {
		if a.addr == "" {
			continue // only the optional advertise addresses can be empty after defaults
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", a.name, a.addr, err))
		}
	}
	if c.ExpectMembers < 1 {
		errs = append(errs, fmt.Errorf("ExpectMembers must be at least 1, got %d", c.ExpectMembers))
	}
	if c.PartitionCount < 1 {
		errs = append(errs, fmt.Errorf("PartitionCount must be positive, got %d", c.PartitionCount))
	}
	if c.RestoreTimeout < 0 {
		errs = append(errs, fmt.Errorf("RestoreTimeout must not be negative, got %v", c.RestoreTimeout))
	}
	if c.RestorePolicy != RestoreFullOnly && c.RestorePolicy != RestorePartialMostRecent {
		errs = append(errs, fmt.Errorf("RestorePolicy %d is not a RestorePolicy", c.RestorePolicy))
	}
	if n := c.backups(); n < 0 || n > MaxBackupCount {
		errs = append(errs, fmt.Errorf("BackupCount must be within 0..%d, got %d", MaxBackupCount, n))
	}
	if c.MaxVoters != 3 && c.MaxVoters != 5 {
		errs = append(errs, fmt.Errorf("MaxVoters must be 3 or 5, got %d", c.MaxVoters))
	}
	if c.Console.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Console.Addr); err != nil {
			errs = append(errs, fmt.Errorf("Console.Addr %q: %v", c.Console.Addr, err))
		}
	}
	if c.MemoryBudget < 0 {
		errs = append(errs, fmt.Errorf("MemoryBudget must not be negative, got %d", c.MemoryBudget))
	}
	if c.OperationTimeout < 0 {
		errs = append(errs, fmt.Errorf("OperationTimeout must not be negative, got %v", c.OperationTimeout))
	}
	if c.MaxFrameSize >= 0 && c.MaxFrameSize < 1<<20 {
		errs = append(errs, fmt.Errorf("MaxFrameSize must be at least 1 MiB, got %d", c.MaxFrameSize))
	}
	errs = append(errs, configerr.Problems(c.transportConfig(nil).Validate(), transport.ErrInvalidConfig)...)
	if seeds, ok := c.Discovery.(discovery.Static); ok {
		for _, s := range seeds {
			if err := checkSeed(s); err != nil {
				errs = append(errs, fmt.Errorf("seed %q in Seeds: %v", s, err))
			}
		}
	}
	errs = append(errs, c.validateTimings()...)
	errs = append(errs, c.Security.validate()...)
	// Each map's configuration, with the map service's own rules (dmap.MapConfig.Validate, its
	// persistence with mapstore's): the problems come back named Maps["name"].Field.
	errs = append(errs, configerr.Problems((engine.Config{Maps: c.engineConfig(nil).Maps}).Validate(), engine.ErrInvalidConfig)...)
	for _, name := range slices.Sorted(maps.Keys(c.Queues)) {
		prefix := fmt.Sprintf("Queues[%q]: ", name)
		if name == "" {
			errs = append(errs, fmt.Errorf("%squeue names must not be empty", prefix))
		}
		errs = append(errs, configerr.Prefix(prefix, configerr.Problems(c.Queues[name].Validate(), queue.ErrInvalidConfig))...)
	}
	return configerr.Join(ErrInvalidConfig, errs)
}

// checkSeed checks a seed's form, host:port, so that a typo fails Validate instead of a join
// that never succeeds (Start waits for its seeds).
func checkSeed(seed string) error {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("no host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q is not within 1..65535", port)
	}
	return nil
}

// transportConfig is the member's transport configuration (after defaults), logging to log
// (nil: discard).
func (c Config) transportConfig(log *slog.Logger) transport.Config {
	return transport.Config{MaxFrameSize: c.MaxFrameSize, Logger: log}
}

// configError wraps in ErrInvalidConfig a configuration error of a package Start configures
// (which Validate should have caught), so that Start reports every configuration error alike.
func configError(err error) error {
	if err == nil || errors.Is(err, ErrInvalidConfig) {
		return err
	}
	for _, sentinel := range []error{control.ErrConfig, dmap.ErrInvalidConfig, mapstore.ErrInvalidConfig, transport.ErrInvalidConfig} {
		if errors.Is(err, sentinel) {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return err
}

// validateTimings checks Timings with the rules of the packages that use them, so that the rules
// live in one place: the control plane's (raft, gossip, leases) and the map service's.
func (c Config) validateTimings() []error {
	var errs []error
	// The timings' part of the derived configurations: the other fields are checked with the
	// names a user knows them by (Validate's own checks and each map's).
	cc := c.controlConfig("validate", "127.0.0.1:1", nil)
	probe := control.Config{ID: cc.ID, TransportAddr: cc.TransportAddr, Timings: cc.Timings, LeaseMargin: cc.LeaseMargin, LostGrace: cc.LostGrace}
	for _, err := range configerr.Problems(probe.Validate(), control.ErrConfig) {
		errs = append(errs, fmt.Errorf("Timings: %w", err))
	}
	for _, err := range configerr.Problems((engine.Config{BackupAckTimeout: c.engineConfig(nil).BackupAckTimeout}).Validate(), engine.ErrInvalidConfig) {
		errs = append(errs, fmt.Errorf("Timings: %w", err))
	}
	return errs
}

// The configurations of the member's parts are derived from c (after defaults) here and nowhere
// else: each setting a user gives once, in Config, reaches every part that needs it (the
// partition count the control plane's table, whose length the map service takes as its own; the
// gossip address the control plane alone), and Validate checks what Start will use.

// controlConfig is the control plane's configuration of member id, advertised at advertise.
func (c Config) controlConfig(id partition.MemberID, advertise string, log *slog.Logger) control.Config {
	cc := control.Config{
		ID:                    id,
		TransportAddr:         advertise,
		GossipBindAddr:        c.GossipBindAddr,
		GossipAdvertiseAddr:   c.GossipAdvertiseAddr,
		Discovery:             c.Discovery,
		ExpectMembers:         c.ExpectMembers,
		BootstrapWithoutSeeds: c.BootstrapWithoutSeeds,
		MaxVoters:             c.MaxVoters,
		PartitionCount:        c.PartitionCount,
		Plan:                  partition.PlanConfig{Backups: c.backups(), RecreateLost: c.RecreateLostPartitions},
		Timings:               c.Timings.control(),
		Logger:                log,
	}
	c.Security.applyControl(&cc)
	return cc
}

// maxValueHeadroom is what MaxFrameSize keeps for a message's headers beyond its largest key
// and value.
const maxValueHeadroom = 64 << 10

// engineConfig is the map service's configuration.
func (c Config) engineConfig(log *slog.Logger) engine.Config {
	return engine.Config{
		AsyncBackups:     c.AsyncBackups,
		OperationTimeout: c.OperationTimeout,
		BackupAckTimeout: c.Timings.BackupAckTimeout,
		MaxValueSize:     c.MaxFrameSize - maxValueHeadroom,
		Maps:             engineMaps(c.Maps),
		StructureMaps:    engineStructureMaps(c.Queues),
		MemoryBudget:     c.MemoryBudget,
		Logger:           log,
		RestoreMembers:   c.ExpectMembers,
		RestoreTimeout:   c.RestoreTimeout,
		PartialRestore:   c.RestorePolicy == RestorePartialMostRecent,
	}
}
