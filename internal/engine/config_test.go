package engine

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/partition"
)

func TestMapConfigValidate(t *testing.T) {
	if err := (MapConfig{}).Validate(); err != nil {
		t.Fatalf("zero MapConfig (defaults): %v", err)
	}
	if err := (MapConfig{Persistence: mapstore.Config{WriteDelay: time.Second, BatchSize: 10}}).Validate(); err != nil {
		t.Fatalf("valid write-behind MapConfig: %v", err)
	}
	err := MapConfig{Persistence: mapstore.Config{WriteDelay: -time.Second, MaxDirtyEntries: -1}}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("want ErrInvalidConfig, got %v", err)
	}
	for _, want := range []string{"Persistence.WriteDelay -1s is negative", "Persistence.MaxDirtyEntries -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %q", want, err)
		}
	}
}

// NewService checks every map's configuration, with the map's name, before it uses anything.
func TestNewServiceRejectsBadMapConfig(t *testing.T) {
	cfg := Config{Maps: map[string]MapConfig{
		"orders": {Persistence: mapstore.Config{WriteDelay: -time.Second}},
		"fine":   {Persistence: mapstore.Config{WriteDelay: time.Second}},
		"":       {},
		"\x00x":  {},
	}}
	_, err := NewService(cfg, nil, nil, nil)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("want ErrInvalidConfig, got %v", err)
	}
	for _, want := range []string{`Maps["orders"]: Persistence.WriteDelay -1s is negative`, `Maps[""]: map names must not be empty`, `Maps["\x00x"]: ` + errReservedName.Error()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %q", want, err)
		}
	}
	if strings.Contains(err.Error(), `"fine"`) {
		t.Errorf("a valid map is reported: %v", err)
	}
}

// The partition count is the cluster's, the length of its table, not a setting of the service
// that could disagree with the control plane's.
func TestPartitionCountIsTheCluster(t *testing.T) {
	net := transport.NewMemNetwork()
	for _, n := range []int{1, 7} {
		srv, err := transport.NewServer(transport.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		node := &enginetest.Node{ID: "m", Coord: enginetest.NewCoord(n, partition.PlanConfig{})}
		s, err := NewService(Config{}, node, net.Caller("m"), srv)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.PartitionCount(); got != n {
			t.Errorf("PartitionCount %d, want the table's %d", got, n)
		}
		s.Close()
	}
	empty := enginetest.NewCoord(1, partition.PlanConfig{})
	empty.Table = &partition.Table{}
	node := &enginetest.Node{ID: "m", Coord: empty}
	srv, err := transport.NewServer(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := NewService(Config{}, node, net.Caller("m"), srv); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a cluster without partitions: %v, want ErrInvalidConfig", err)
	}
}
