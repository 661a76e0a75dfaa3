package gridmap

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/freeport"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
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
		(engine.Config{}).Validate(),
		(mapstore.Config{}).Validate(),
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
	if n := (Config{}).withDefaults().backups(); n != DefaultBackupCount || DefaultBackupCount != 1 {
		t.Fatalf("unset BackupCount gives %d backups, want the default 1", n)
	}
	for _, n := range []int{0, 1, MaxBackupCount} {
		cfg := Config{BackupCount: new(n)}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("BackupCount %d: %v", n, err)
		}
		if got := cfg.withDefaults().backups(); got != n {
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
	cfg := Config{BackupCount: &n}.withDefaults()
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
