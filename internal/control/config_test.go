package control

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/partition"
)

func TestConfigValidateReportsEverything(t *testing.T) {
	cfg := Config{
		TransportAddr:  "nohost",
		GossipBindAddr: "x:y",
		ExpectMembers:  -1,
		MaxVoters:      4,
		PartitionCount: -5,
		Plan:           partition.PlanConfig{Backups: 9},
		LeaseDuration:  100 * time.Millisecond,
		Timings:        Timings{RaftLeaderLeaseTimeout: 2 * time.Second},
	}
	err := cfg.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"ID is empty", "TransportAddr", "GossipBindAddr", "ExpectMembers", "MaxVoters",
		"PartitionCount", "Plan", "exceeds RaftHeartbeatTimeout", "must exceed RaftLeaderLeaseTimeout", "half RaftHeartbeatTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	ok := Config{ID: "a", TransportAddr: "127.0.0.1:7000"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	d := ok.withDefaults()
	if d.ExpectMembers != 1 || d.MaxVoters != 3 || d.PartitionCount != partition.DefaultCount || d.LeaseDuration != 3*time.Second || d.Timings != DefaultTimings() {
		t.Fatalf("defaults not filled in: %+v", d)
	}
	if got, want := d.DeadWait(), 3*time.Second+500*time.Millisecond+750*time.Millisecond; got != want {
		t.Fatalf("DeadWait = %v, want %v", got, want)
	}
	local := Config{ID: "a", TransportAddr: "127.0.0.1:7000", Timings: LocalTimings()}
	if err := local.Validate(); err != nil {
		t.Fatalf("LocalTimings: %v", err)
	}
	if local.withDefaults().LeaseDuration != time.Second {
		t.Fatal("LocalTimings does not set a 1s lease")
	}
}
