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
		Timings:        Timings{LeaseDuration: 100 * time.Millisecond, RaftLeaderLeaseTimeout: 2 * time.Second},
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
	d := ok.WithDefaults()
	if d.ExpectMembers != 1 || d.MaxVoters != 3 || d.PartitionCount != partition.DefaultCount || d.Timings.LeaseDuration != 3*time.Second || d.Timings != DefaultTimings() {
		t.Fatalf("defaults not filled in: %+v", d)
	}
	if got, want := d.DeadWait(), 3*time.Second+500*time.Millisecond+750*time.Millisecond; got != want {
		t.Fatalf("DeadWait = %v, want %v", got, want)
	}
	local := Config{ID: "a", TransportAddr: "127.0.0.1:7000", Timings: LocalTimings()}
	if err := local.Validate(); err != nil {
		t.Fatalf("LocalTimings: %v", err)
	}
	if local.WithDefaults().Timings.LeaseDuration != time.Second {
		t.Fatal("LocalTimings does not set a 1s lease")
	}
}

// Validate applies raft's rules to the configuration Open gives raft, so that a timing raft
// would refuse is reported by Validate (with the field's name where it is ours), not by Open.
func TestConfigValidateRaftRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Timings)
		want string
	}{
		{"election below heartbeat", func(t *Timings) { t.RaftElectionTimeout = t.RaftHeartbeatTimeout / 2 }, "RaftElectionTimeout 250ms is below RaftHeartbeatTimeout"},
		{"commit timeout below raft's minimum", func(t *Timings) { t.RaftCommitTimeout = time.Microsecond }, "raft: CommitTimeout is too low"},
		{"leader lease below raft's minimum", func(t *Timings) { t.RaftLeaderLeaseTimeout = time.Millisecond }, "raft: LeaderLeaseTimeout is too low"},
		{"lease below half a heartbeat", func(t *Timings) {
			t.LeaseDuration = t.RaftHeartbeatTimeout/2 - time.Millisecond
			t.RaftLeaderLeaseTimeout = 10 * time.Millisecond
		}, "half RaftHeartbeatTimeout"},
		{"lease not above the leader lease", func(t *Timings) { t.LeaseDuration = t.RaftLeaderLeaseTimeout }, "LeaseDuration 300ms must exceed RaftLeaderLeaseTimeout"},
		{"leader lease above heartbeat", func(t *Timings) { t.RaftLeaderLeaseTimeout = t.RaftHeartbeatTimeout + 1 }, "exceeds RaftHeartbeatTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := LocalTimings()
			tc.mod(&tm)
			err := Config{ID: "a", TransportAddr: "127.0.0.1:7000", Timings: tm}.Validate()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrConfig mentioning %q", err, tc.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("one problem reported %d times:\n%v", n, err)
			}
		})
	}
	for name, tm := range map[string]Timings{"Default": DefaultTimings(), "Local": LocalTimings(), "WAN": WANTimings()} {
		if err := (Config{ID: "a", TransportAddr: "127.0.0.1:7000", Timings: tm}).Validate(); err != nil {
			t.Errorf("%sTimings: %v", name, err)
		}
		// Every preset's lease outlasts an election (see Validate).
		if tm.LeaseDuration < tm.RaftHeartbeatTimeout+tm.RaftElectionTimeout {
			t.Errorf("%sTimings: lease %v shorter than heartbeat + election timeouts", name, tm.LeaseDuration)
		}
	}
}
