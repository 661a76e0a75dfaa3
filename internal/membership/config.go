package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timings are the failure-detection and gossip timings of memberlist. A
// member is probed every ProbeInterval; one that does not answer within
// ProbeTimeout (directly or through IndirectChecks helpers) is suspected, and
// declared dead after a suspicion timeout of SuspicionMult * max(1, log10(n))
// * ProbeInterval, stretched up to SuspicionMaxTimeoutMult times that while
// few members confirm the suspicion.
type Timings struct {
	// ProbeInterval is the time between failure probes. LAN default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for an ack; must be below
	// ProbeInterval. LAN default 500ms.
	ProbeTimeout time.Duration
	// IndirectChecks is the number of members asked to probe a member that
	// did not answer directly. LAN default 3.
	IndirectChecks int
	// SuspicionMult scales the suspicion timeout (see Timings). LAN default 4.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds how far the suspicion timeout stretches
	// while unconfirmed. LAN default 6.
	SuspicionMaxTimeoutMult int
	// GossipInterval is the time between gossip rounds. LAN default 200ms.
	GossipInterval time.Duration
	// PushPullInterval is the time between full state exchanges with a
	// random member. LAN default 30s.
	PushPullInterval time.Duration
	// TCPTimeout bounds a TCP exchange (join, push-pull, fallback probe).
	// LAN default 10s.
	TCPTimeout time.Duration
}

// LANTimings are memberlist's LAN defaults: the production default. A
// crashed member is suspected within about 1 to 2 seconds (a member is probed
// about once per ProbeInterval of 1s, with a 500ms timeout) and declared dead
// after the suspicion timeout: 4s (SuspicionMult probe intervals, times
// log10(n) beyond 10 members) in clusters of fewer than 4 members; in larger
// ones it starts at up to 6 times that and shrinks to 4s as other members
// confirm the suspicion, which takes a few seconds when several probe the
// dead member. So about 5 to 6 seconds after the crash in small clusters, 5
// to 12 in larger ones. A false suspicion needs a member to miss a direct and
// 3 indirect probes for 500ms and then not refute it for seconds: rare on a
// LAN, though a long GC or scheduling pause can cause one.
func LANTimings() Timings {
	return Timings{
		ProbeInterval:           time.Second,
		ProbeTimeout:            500 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 6,
		GossipInterval:          200 * time.Millisecond,
		PushPullInterval:        30 * time.Second,
		TCPTimeout:              10 * time.Second,
	}
}

// WANTimings are memberlist's WAN defaults (DefaultWANConfig), for members
// far apart (round trips of about 100ms and more, occasional loss): probes
// every 5s with a 3s timeout and a suspicion timeout of 6 probe intervals.
// A crashed member is suspected within about 5 to 10 seconds and declared
// dead 30 seconds later in clusters of fewer than 6 members (longer while
// unconfirmed in larger ones, see LANTimings), so about 35 to 40 seconds after
// the crash; a false suspicion needs a member to miss its probes for 3
// seconds and then stay unheard for 30: very rare.
// memberlist's GossipNodes (4 in its WAN defaults) is not part of Timings and
// keeps the LAN value 3.
func WANTimings() Timings {
	return Timings{
		ProbeInterval:           5 * time.Second,
		ProbeTimeout:            3 * time.Second,
		IndirectChecks:          3,
		SuspicionMult:           6,
		SuspicionMaxTimeoutMult: 6,
		GossipInterval:          500 * time.Millisecond,
		PushPullInterval:        60 * time.Second,
		TCPTimeout:              30 * time.Second,
	}
}

// LocalTimings are fast timings for members on one machine (tests, demos):
// a dead member is declared dead within about 1 to 3 seconds. The probe
// timeout is generous (200ms) so that a loaded 2-core machine running
// several members under the race detector does not produce false suspicions
// that outlive a refutation.
func LocalTimings() Timings {
	return Timings{
		ProbeInterval:           250 * time.Millisecond,
		ProbeTimeout:            200 * time.Millisecond,
		IndirectChecks:          2,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 3,
		GossipInterval:          50 * time.Millisecond,
		PushPullInterval:        3 * time.Second,
		TCPTimeout:              2 * time.Second,
	}
}

// Config configures a List. Zero fields take the documented defaults
// (WithDefaults); Validate checks the result; New does both.
type Config struct {
	// ID names this member: the memberlist node name, unique per process
	// start. Required.
	ID string
	// TransportAddr is this member's advertised transport address
	// (host:port), published in its metadata. Required.
	TransportAddr string
	// BindAddr is the gossip bind address host:port; port 0 picks a free
	// port (the same for TCP and UDP). Default "127.0.0.1:0".
	BindAddr string
	// AdvertiseAddr is the gossip address other members use, host:port.
	// "" means BindAddr (with the picked port). A port of 0 means the bound
	// port.
	AdvertiseAddr string
	// Timings are the failure detection timings. The zero value means
	// LANTimings().
	Timings Timings
	// EventBuffer bounds the Events channel. When it is full, new events
	// are dropped (counted in Dropped) rather than blocking memberlist;
	// Members stays exact and Changed still fires. Default 256.
	EventBuffer int
	// RetainGone is how long a member that left or died is still reported
	// by Members (with its State and Since). Default 10 minutes.
	RetainGone time.Duration
	// Logger receives memberlist's log at Warn and above (Debug too when
	// the logger enables it). nil discards.
	Logger *slog.Logger
	// Admission, when set, names the cluster and holds its join secret:
	// members whose gossiped credentials do not match are refused (see
	// Admission). Nil: every member that can gossip is admitted.
	Admission *Admission
	// GossipKeys encrypt and authenticate every gossip packet and stream
	// with AES-GCM (memberlist's keyring): the first key encrypts, every
	// key decrypts, so keys rotate without downtime (see List.InstallKey).
	// Each is 16, 24 or 32 bytes (AES-128, -192, -256). Empty: plaintext
	// gossip.
	GossipKeys [][]byte
	// Network, when not nil, carries the gossip in memory instead of UDP
	// and TCP sockets (members of one process, in tests); BindAddr's host
	// must then be an IP, and port 0 picks one unused in Network. Nil:
	// sockets.
	Network *MemNetwork
}

// WithDefaults returns c with every zero field set to its default (Timings
// as a whole when it is zero).
func (c Config) WithDefaults() Config {
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1:0"
	}
	if c.Timings == (Timings{}) {
		c.Timings = LANTimings()
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = 256
	}
	if c.RetainGone == 0 {
		c.RetainGone = 10 * time.Minute
	}
	return c
}

// Validate reports every problem of c.WithDefaults() in one error wrapping
// ErrConfig. ID and TransportAddr are required.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("ID is empty"))
	}
	if _, _, err := splitHostPort(c.TransportAddr); err != nil {
		errs = append(errs, fmt.Errorf("TransportAddr: %w", err))
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("BindAddr: %w", err))
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("AdvertiseAddr: %w", err))
		}
	}
	t := c.Timings
	if t.ProbeInterval <= 0 || t.ProbeTimeout <= 0 || t.GossipInterval <= 0 || t.PushPullInterval <= 0 || t.TCPTimeout <= 0 {
		errs = append(errs, errors.New("Timings: every duration must be positive"))
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		errs = append(errs, fmt.Errorf("Timings: ProbeTimeout %v must be below ProbeInterval %v", t.ProbeTimeout, t.ProbeInterval))
	}
	if t.SuspicionMult < 1 || t.SuspicionMaxTimeoutMult < 1 || t.IndirectChecks < 0 {
		errs = append(errs, errors.New("Timings: SuspicionMult and SuspicionMaxTimeoutMult must be >= 1, IndirectChecks >= 0"))
	}
	if c.EventBuffer < 0 {
		errs = append(errs, fmt.Errorf("EventBuffer %d is negative", c.EventBuffer))
	}
	for i, k := range c.GossipKeys {
		if err := memberlist.ValidateKey(k); err != nil {
			errs = append(errs, fmt.Errorf("GossipKeys[%d]: %d bytes: want 16, 24 or 32", i, len(k)))
		}
	}
	if c.Admission != nil {
		if err := c.Admission.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RetainGone < 0 {
		errs = append(errs, fmt.Errorf("RetainGone %v is negative", c.RetainGone))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}
