package gridmap

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/control"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/freeport"
	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
	"github.com/gridmap/gridmap/partition"
)

// Validate checks each map's configuration with the map service's rules, naming the map and the
// field, and Start refuses the same configuration with ErrInvalidConfig before it starts anything
// (until this, a map's bad WriteDelay passed Validate and failed Start with dmap's sentinel).
func TestConfigValidateMaps(t *testing.T) {
	store := memstore.New()
	tests := []struct {
		name string
		maps map[string]dmap.MapConfig
		want []string // substrings of the error; none: valid
	}{
		{name: "valid", maps: map[string]dmap.MapConfig{
			"orders":  {Store: store, Persistence: mapstore.Config{WriteDelay: time.Second, BatchSize: 50}},
			"catalog": {Store: store}, // write-through, every default
			"cache":   {},
		}},
		{name: "negative WriteDelay", maps: map[string]dmap.MapConfig{
			"orders": {Store: store, Persistence: mapstore.Config{WriteDelay: -time.Second}},
			"fine":   {Store: store, Persistence: mapstore.Config{WriteDelay: time.Second}},
		}, want: []string{`Maps["orders"]: Persistence.WriteDelay -1s is negative`}},
		{name: "every problem of every map", maps: map[string]dmap.MapConfig{
			"orders":  {Store: store, Persistence: mapstore.Config{WriteDelay: -time.Second, BatchSize: -1}},
			"reports": {Store: store, Persistence: mapstore.Config{WriteDelay: time.Second, RetryInitial: time.Minute, RetryMax: time.Second}},
			"dumps":   {Store: store, Persistence: mapstore.Config{BatchBytes: 2 << 20, MaxDirtyBytes: 1 << 20}},
		}, want: []string{
			`Maps["orders"]: Persistence.WriteDelay -1s is negative`,
			`Maps["orders"]: Persistence.BatchSize -1 must be at least 1`,
			`Maps["reports"]: Persistence.RetryMax 1s is below RetryInitial 1m0s`,
			`Maps["dumps"]: Persistence.BatchBytes 2097152 exceeds MaxDirtyBytes 1048576`,
		}},
		{name: "empty map name", maps: map[string]dmap.MapConfig{"": {Store: store}},
			want: []string{`Maps[""]: map names must not be empty`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Maps: tc.maps, OperationTimeout: -1} // a member-level problem too, for some tests
			if len(tc.want) == 0 {
				cfg.OperationTimeout = 0
			}
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid config: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate: %v, want ErrInvalidConfig", err)
			}
			msg := err.Error()
			for _, w := range append(tc.want, "OperationTimeout must not be negative") {
				if !strings.Contains(msg, w) {
					t.Errorf("%q missing from:\n%s", w, msg)
				}
			}
			// dmap's and mapstore's sentinels say "invalid configuration" too.
			if !strings.HasPrefix(msg, ErrInvalidConfig.Error()) || strings.Count(msg, "invalid configuration") != 1 {
				t.Errorf("the problems should read as gridmap's own, under one sentinel:\n%s", msg)
			}
			if strings.Contains(msg, `"fine"`) {
				t.Errorf("a valid map is reported:\n%s", msg)
			}

			// Start refuses the same configuration before it binds anything.
			addr, ferr := freeport.Addr("127.0.0.1")
			if ferr != nil {
				t.Fatal(ferr)
			}
			cfg.BindAddr = addr
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m, serr := Start(ctx, cfg)
			if serr == nil {
				m.Close(ctx)
				t.Fatal("Start accepted an invalid configuration")
			}
			if !errors.Is(serr, ErrInvalidConfig) || serr.Error() != msg {
				t.Fatalf("Start: %v, want Validate's error %v", serr, err)
			}
			ln, lerr := net.Listen("tcp", addr)
			if lerr != nil {
				t.Fatalf("Start bound %s before it failed: %v", addr, lerr)
			}
			ln.Close()
		})
	}
}

// Start reports configuration errors of the packages it configures as its own, whichever
// package found them.
func TestConfigErrorWrapsPackageSentinels(t *testing.T) {
	for _, err := range []error{
		(engine.Config{MemoryBudget: -1}).Validate(),
		(mapstore.Config{BatchSize: -1}).Validate(),
		(transport.Config{MaxFrameSize: -1}).Validate(),
		(control.Config{}).Validate(),
		dmap.MapConfig{Persistence: mapstore.Config{WriteDelay: -1}}.Validate(),
	} {
		if got := configError(err); !errors.Is(got, ErrInvalidConfig) || !errors.Is(got, err) {
			t.Errorf("configError(%v) = %v", err, got)
		}
	}
	other := errors.New("listen: address in use")
	if configError(other) != other || configError(nil) != nil {
		t.Error("configError changed an error that is not a configuration error")
	}
	already := (Config{MaxVoters: 4}).Validate()
	if configError(already) != already {
		t.Error("configError wrapped ErrInvalidConfig twice")
	}
}

// BackupCount: nil (not set) means the documented default of one backup, an explicit 0 means
// none, and the member keeps its own copy of the number.
func TestConfigBackupCount(t *testing.T) {
	if n := (Config{}).WithDefaults().backups(); n != DefaultBackupCount || DefaultBackupCount != 1 {
		t.Fatalf("unset BackupCount gives %d backups, want the default 1", n)
	}
	for _, n := range []int{0, 1, MaxBackupCount} {
		cfg := Config{BackupCount: new(n)}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("BackupCount %d: %v", n, err)
		}
		if got := cfg.WithDefaults().backups(); got != n {
			t.Fatalf("BackupCount %d gives %d backups", n, got)
		}
	}
	for _, n := range []int{-1, MaxBackupCount + 1} {
		err := Config{BackupCount: new(n)}.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "BackupCount") {
			t.Fatalf("BackupCount %d: %v, want ErrInvalidConfig naming BackupCount", n, err)
		}
	}
	n := 2
	cfg := Config{BackupCount: &n}.WithDefaults()
	n = 5
	if got := cfg.backups(); got != 2 {
		t.Fatalf("a change to the caller's int after defaults shows: %d backups", got)
	}
}

// A cluster configured with BackupCount new(0) keeps a single copy of every partition.
func TestBackupCountZeroMeansNone(t *testing.T) {
	members := startCluster(t, 2, func(c *Config) { c.BackupCount = new(0) }) // settles with 1 replica each
	for _, p := range members[1].Cluster().Partitions() {
		if p.Owner == "" || len(p.Backups) != 0 {
			t.Fatalf("partition %d: %+v, want an owner and no backups", p.ID, p)
		}
	}
}

// Validate checks the whole tree: what Start would only find when raft, the transport or the
// join refuses it is reported by Validate, each problem once, with ErrInvalidConfig; and Start
// refuses the same configuration before starting anything.
func TestConfigValidateWholeTree(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"election below heartbeat (raft)", func(c *Config) { c.Timings.RaftElectionTimeout = c.Timings.RaftHeartbeatTimeout / 2 },
			"RaftElectionTimeout 250ms is below RaftHeartbeatTimeout 500ms"},
		{"commit timeout below raft's minimum", func(c *Config) { c.Timings.RaftCommitTimeout = time.Microsecond },
			"CommitTimeout is too low"},
		{"lease not longer than the leader lease", func(c *Config) { c.Timings.LeaseDuration = c.Timings.RaftLeaderLeaseTimeout },
			"LeaseDuration 300ms must exceed RaftLeaderLeaseTimeout 300ms"},
		{"lease shorter than half a heartbeat", func(c *Config) {
			c.Timings.RaftHeartbeatTimeout, c.Timings.RaftElectionTimeout, c.Timings.RaftContactTimeout = 4*time.Second, 4*time.Second, 8*time.Second
		}, "LeaseDuration 1s is below half RaftHeartbeatTimeout 4s"},
		{"frame above the transport's limit", func(c *Config) { c.MaxFrameSize = 1 << 40 }, "MaxFrameSize 1099511627776 not in"},
		{"seed that is no host:port", func(c *Config) { c.Seeds = []string{"127.0.0.1:7946", "a:b:c"} }, `seed "a:b:c" in Seeds`},
		{"seed without host", func(c *Config) { c.Seeds = []string{":7946"} }, `seed ":7946" in Seeds: no host`},
		{"seed with port 0", func(c *Config) { c.Seeds = []string{"10.0.0.1:0"} }, `port "0" is not within 1..65535`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Timings: LocalTimings()}
			tc.mod(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("one problem reported as %d:\n%v", n, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m, serr := Start(ctx, cfg)
			if m != nil {
				m.kill()
			}
			if !errors.Is(serr, ErrInvalidConfig) {
				t.Fatalf("Start = %v, want ErrInvalidConfig", serr)
			}
		})
	}
	if err := (Config{Seeds: []string{"db-1.internal:7946", "[::1]:7946"}}).Validate(); err != nil {
		t.Fatalf("valid seeds: %v", err)
	}
}

// WithDefaults fills every default, and the result validates like the original: one contract.
func TestConfigWithDefaults(t *testing.T) {
	d := Config{}.WithDefaults()
	if d.BindAddr != DefaultBindAddr || d.GossipBindAddr != DefaultGossipBindAddr || d.ExpectMembers != DefaultExpectMembers ||
		d.PartitionCount != DefaultPartitionCount || d.backups() != DefaultBackupCount || d.MaxVoters != DefaultMaxVoters ||
		d.OperationTimeout != DefaultOperationTimeout || d.MaxFrameSize != DefaultMaxFrameSize || d.Logger == nil ||
		d.Discovery == nil || d.Timings != LANTimings() {
		t.Fatalf("defaults not filled in: %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if d.WithDefaults().Timings != d.Timings || d.WithDefaults().PartitionCount != d.PartitionCount {
		t.Fatal("WithDefaults is not idempotent")
	}
}

// Every configuration of the module keeps one contract: the zero value (with its required
// fields) is valid, WithDefaults fills every default and is idempotent, Validate checks
// c.WithDefaults() (so it answers alike before and after), and a problem wraps the package's
// sentinel.
func TestConfigContract(t *testing.T) {
	type contract struct {
		valid, defaulted, bad error // Validate of: zero value, WithDefaults of it, one with a bad field
		idempotent            bool
		sentinel              error
	}
	cases := map[string]contract{
		"gridmap.Config": {Config{}.Validate(), Config{}.WithDefaults().Validate(), Config{MaxVoters: 4}.Validate(),
			reflect.DeepEqual(Config{}.WithDefaults().WithDefaults().Timings, Config{}.WithDefaults().Timings), ErrInvalidConfig},
		"gridmap.Timings": {Config{Timings: Timings{}}.Validate(), Config{Timings: Timings{}.WithDefaults()}.Validate(),
			Config{Timings: Timings{LeaseDuration: -1}}.Validate(), Timings{}.WithDefaults().WithDefaults() == Timings{}.WithDefaults(), ErrInvalidConfig},
		"engine.Config": {engine.Config{}.Validate(), engine.Config{}.WithDefaults().Validate(),
			engine.Config{MaxConcurrentMigrations: -1}.Validate(),
			engine.Config{}.WithDefaults().WithDefaults().MigrationChunkSize == engine.Config{}.WithDefaults().MigrationChunkSize, engine.ErrInvalidConfig},
		"dmap.MapConfig": {dmap.MapConfig{}.Validate(), dmap.MapConfig{}.WithDefaults().Validate(),
			dmap.MapConfig{Persistence: mapstore.Config{BatchBytes: -1}}.Validate(),
			dmap.MapConfig{}.WithDefaults().WithDefaults() == dmap.MapConfig{}.WithDefaults(), dmap.ErrInvalidConfig},
		"mapstore.Config": {mapstore.Config{}.Validate(), mapstore.Config{}.WithDefaults().Validate(), mapstore.Config{MaxDirtyBytes: -1}.Validate(),
			mapstore.Config{}.WithDefaults().WithDefaults() == mapstore.Config{}.WithDefaults(), mapstore.ErrInvalidConfig},
		"control.Config": {control.Config{ID: "a", TransportAddr: "127.0.0.1:1"}.Validate(),
			control.Config{ID: "a", TransportAddr: "127.0.0.1:1"}.WithDefaults().Validate(),
			control.Config{ID: "a", TransportAddr: "127.0.0.1:1", MaxVoters: 4}.Validate(),
			control.Config{}.WithDefaults().WithDefaults().Timings == control.Config{}.WithDefaults().Timings, control.ErrConfig},
		"membership.Config": {membership.Config{ID: "a", TransportAddr: "127.0.0.1:1"}.Validate(),
			membership.Config{ID: "a", TransportAddr: "127.0.0.1:1"}.WithDefaults().Validate(),
			membership.Config{ID: "a", TransportAddr: "127.0.0.1:1", EventBuffer: -1}.Validate(),
			reflect.DeepEqual(membership.Config{}.WithDefaults().WithDefaults(), membership.Config{}.WithDefaults()), membership.ErrConfig},
		"listener.Options": {listener.Options{}.Validate(), listener.Options{}.WithDefaults().Validate(), listener.Options{QueueSize: -1}.Validate(),
			listener.Options{}.WithDefaults().WithDefaults().QueueSize == listener.Options{}.WithDefaults().QueueSize, listener.ErrInvalidOptions},
		"partition.PlanConfig": {partition.PlanConfig{}.Validate(), partition.PlanConfig{}.WithDefaults().Validate(), partition.PlanConfig{Backups: -1}.Validate(),
			partition.PlanConfig{}.WithDefaults().WithDefaults() == partition.PlanConfig{}.WithDefaults(), partition.ErrInvalidConfig},
		"transport.Config": {transport.Config{}.Validate(), transport.Config{}.WithDefaults().Validate(), transport.Config{QueueSize: -1}.Validate(),
			transport.Config{}.WithDefaults().WithDefaults().MaxFrameSize == transport.Config{}.WithDefaults().MaxFrameSize, transport.ErrInvalidConfig},
	}
	for name, c := range cases {
		if c.valid != nil || c.defaulted != nil {
			t.Errorf("%s: zero value %v, with defaults %v; want both valid", name, c.valid, c.defaulted)
		}
		if !errors.Is(c.bad, c.sentinel) {
			t.Errorf("%s: a bad field gave %v, want %v", name, c.bad, c.sentinel)
		}
		if !c.idempotent {
			t.Errorf("%s: WithDefaults is not idempotent", name)
		}
	}
}

// The member's parts are configured from Config alone: the control plane's and the map
// service's configurations are derived from it in one place each, so that no setting has two
// homes (the partition count reaches the map service through the control plane's table).
func TestDerivedConfigs(t *testing.T) {
	c := Config{
		GossipBindAddr: "127.0.0.1:7946", GossipAdvertiseAddr: "10.0.0.1:7946", ExpectMembers: 3,
		PartitionCount: 17, BackupCount: new(2), MaxVoters: 5, RecreateLostPartitions: true,
		BootstrapWithoutSeeds: true, AsyncBackups: true, OperationTimeout: 7 * time.Second,
		MaxFrameSize: 2 << 20, MemoryBudget: 1 << 30, Timings: LocalTimings(),
		Maps:     map[string]dmap.MapConfig{"orders": {Persistence: mapstore.Config{WriteDelay: time.Second}}},
		Security: Security{ClusterName: "c", JoinSecret: "s"},
	}.WithDefaults()
	cc := c.controlConfig("m1", "10.0.0.1:7000", nil)
	if cc.ID != "m1" || cc.TransportAddr != "10.0.0.1:7000" || cc.GossipBindAddr != c.GossipBindAddr ||
		cc.GossipAdvertiseAddr != c.GossipAdvertiseAddr || cc.ExpectMembers != 3 || cc.PartitionCount != 17 ||
		cc.Plan.Backups != 2 || !cc.Plan.RecreateLost || cc.MaxVoters != 5 || !cc.BootstrapWithoutSeeds ||
		cc.Timings != c.Timings.control() || cc.Admission == nil || cc.Admission.ClusterName != "c" {
		t.Errorf("control config %+v from %+v", cc, c)
	}
	if err := cc.Validate(); err != nil {
		t.Errorf("the derived control config is invalid: %v", err)
	}
	ec := c.engineConfig(nil)
	if !ec.AsyncBackups || ec.OperationTimeout != 7*time.Second || ec.BackupAckTimeout != c.Timings.BackupAckTimeout ||
		ec.MaxValueSize != 2<<20-maxValueHeadroom || ec.MemoryBudget != 1<<30 ||
		ec.Maps["orders"].Persistence.WriteDelay != time.Second {
		t.Errorf("engine config %+v from %+v", ec, c)
	}
	if err := ec.Validate(); err != nil {
		t.Errorf("the derived engine config is invalid: %v", err)
	}
}
