package gridmap

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/control"
)

// The presets are the control plane's own, field for field, so that the public settings give
// the cluster exactly the timings its tests were tuned with.
func TestTimingsPresetsMatchControl(t *testing.T) {
	if got, want := LANTimings().control(), control.DefaultTimings(); got != want {
		t.Errorf("LANTimings: %+v, want %+v", got, want)
	}
	if got, want := LocalTimings().control(), control.LocalTimings(); got != want {
		t.Errorf("LocalTimings: %+v, want %+v", got, want)
	}
	if got, want := WANTimings().control(), control.WANTimings(); got != want {
		t.Errorf("WANTimings: %+v, want %+v", got, want)
	}
	if got := (Config{}).WithDefaults().Timings; got != LANTimings() {
		t.Errorf("zero Timings: %+v, want LANTimings %+v", got, LANTimings())
	}
	for name, tm := range map[string]Timings{"LAN": LANTimings(), "Local": LocalTimings(), "WAN": WANTimings()} {
		if tm.WithDefaults() != tm {
			t.Errorf("%s preset has zero fields: %+v", name, tm)
		}
		if err := (Config{Timings: tm}).Validate(); err != nil {
			t.Errorf("%s preset: %v", name, err)
		}
	}
	part := Timings{ProbeInterval: 2 * time.Second}.WithDefaults()
	if part.ProbeInterval != 2*time.Second || part.ProbeTimeout != LANTimings().ProbeTimeout || part.LeaseDuration != LANTimings().LeaseDuration {
		t.Errorf("zero fields not filled from LANTimings: %+v", part)
	}
}

// Validate reports the timings' problems with their public field names, by the rules of the
// packages that use them.
func TestTimingsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Timings)
		want []string
	}{
		{"probe timeout above interval", func(t *Timings) { t.ProbeTimeout = 2 * t.ProbeInterval }, []string{"ProbeTimeout"}},
		{"lease below leader lease", func(t *Timings) { t.LeaseDuration = t.RaftLeaderLeaseTimeout }, []string{"LeaseDuration"}},
		{"leader lease above heartbeat", func(t *Timings) { t.RaftLeaderLeaseTimeout = 2 * t.RaftHeartbeatTimeout }, []string{"RaftLeaderLeaseTimeout"}},
		{"negatives", func(t *Timings) { t.BackupAckTimeout = -1; t.SuspectBackoff = -1; t.ReconcileInterval = -1 },
			[]string{"BackupAckTimeout", "SuspectBackoff", "ReconcileInterval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := LocalTimings()
			tc.mod(&tm)
			err := Config{Timings: tm}.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate: %v, want ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}
