package gridmap

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"

	"github.com/gridmap/gridmap/internal/control"
	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// MinJoinSecret is the shortest accepted Security.JoinSecret, in bytes.
const MinJoinSecret = 16

// Security secures the traffic between members. Every field is off when zero, and each works
// alone; a cluster exposed to anyone but its own members wants all three. Every member of a
// cluster must use the same settings (its own certificate aside).
type Security struct {
	// TLS makes every connection between members (map operations, backups, migrations and
	// raft) mutual TLS 1.3: each member presents a certificate and verifies the other's
	// against the cluster's CA. A process without such a certificate gets no answer on the
	// member port, and a member without one is refused when it joins (Start fails with
	// ErrJoinRefused) and never handed partitions. Zero: plain TCP.
	TLS TLSConfig
	// GossipKeys encrypt and authenticate the gossip (membership and failure detection) with
	// AES-GCM: the first key encrypts, every key decrypts. Each is 16, 24 or 32 bytes
	// (AES-128, -192, -256). A member without one of the keys can neither read the gossip nor
	// join. Rotate keys without downtime with Cluster.InstallGossipKey, UseGossipKey and
	// RemoveGossipKey. Empty: plaintext gossip. A cluster cannot mix encrypting and plaintext
	// members: turning encryption on or off means starting every member with the new setting
	// (a rolling restart splits the cluster while it runs).
	GossipKeys [][]byte
	// ClusterName names the cluster; members of clusters with other names refuse each other,
	// so that two clusters on one network never merge by mistake (at most 64 bytes).
	ClusterName string
	// JoinSecret is a secret every member proves it knows before it is admitted: members with
	// another secret refuse each other (compared in constant time; at least 16 bytes). The
	// refusing member logs the refused address; the refused member's Start fails with
	// ErrJoinRefused. The proof gossiped is bound to the member's transport address; with
	// GossipKeys it is also encrypted. Every connection on the member port also starts with a
	// challenge that proves both ends know the secret (and the cluster name), so a process
	// without it can neither read nor write maps, even without TLS; it only ever receives the
	// challenge (a random nonce). The secret authenticates, it does not encrypt: use TLS too
	// on a network others can listen to.
	JoinSecret string
}

// TLSConfig is the member's certificate and the cluster's CA: either files (reloaded at the
// next handshake when they change, so rotated certificates need no restart) or a *tls.Config.
type TLSConfig struct {
	// CertFile is the member's certificate (PEM; intermediates may follow), valid for both
	// server and client authentication, naming every address other members dial it by.
	CertFile string
	// KeyFile is its private key (PEM).
	KeyFile string
	// CAFile is the CA bundle (PEM) that signs every member's certificate.
	CAFile string
	// Config replaces the three files: it must hold the certificate (Certificates or
	// GetCertificate, and GetClientCertificate to choose the client one) and the CA in both
	// RootCAs and ClientCAs. TLS 1.3 and verified client certificates are enforced either way.
	Config *tls.Config
	// ServerName is the name every member's certificate must list. Default: the host of the
	// address dialed (AdvertiseAddr), which the certificate must then list as a SAN.
	ServerName string
}

// enabled reports whether TLS is configured.
func (t TLSConfig) enabled() bool {
	return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" || t.Config != nil
}

// transport returns the transport's TLS, nil when off.
func (t TLSConfig) transport() (*transport.TLS, error) {
	switch {
	case !t.enabled():
		return nil, nil
	case t.Config != nil:
		return transport.NewTLSFromConfig(t.Config, t.ServerName)
	}
	return transport.NewTLSFromFiles(t.CertFile, t.KeyFile, t.CAFile, t.ServerName)
}

// validate reports every problem of s, named Security.Field.
func (s Security) validate() []error {
	var errs []error
	if s.TLS.enabled() {
		files := s.TLS.CertFile != "" || s.TLS.KeyFile != "" || s.TLS.CAFile != ""
		switch {
		case files && s.TLS.Config != nil:
			errs = append(errs, errors.New("Security.TLS: set CertFile, KeyFile and CAFile, or Config, not both"))
		case files && (s.TLS.CertFile == "" || s.TLS.KeyFile == "" || s.TLS.CAFile == ""):
			errs = append(errs, errors.New("Security.TLS: CertFile, KeyFile and CAFile are all required"))
		default:
			if _, err := s.TLS.transport(); err != nil {
				errs = append(errs, fmt.Errorf("Security.TLS: %w", err))
			}
		}
	}
	for i, k := range s.GossipKeys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			errs = append(errs, fmt.Errorf("Security.GossipKeys[%d] is %d bytes: want 16, 24 or 32", i, l))
		}
		if slices.ContainsFunc(s.GossipKeys[:i], func(o []byte) bool { return string(o) == string(k) }) {
			errs = append(errs, fmt.Errorf("Security.GossipKeys[%d] repeats an earlier key", i))
		}
	}
	if len(s.ClusterName) > membership.MaxClusterName {
		errs = append(errs, fmt.Errorf("Security.ClusterName is %d bytes: at most %d", len(s.ClusterName), membership.MaxClusterName))
	}
	if s.JoinSecret != "" && len(s.JoinSecret) < MinJoinSecret {
		errs = append(errs, fmt.Errorf("Security.JoinSecret is %d bytes: at least %d", len(s.JoinSecret), MinJoinSecret))
	}
	return errs
}

// applyTransport sets the transport settings that come from s: TLS, and the secret every
// connection proves it knows (derived from the join secret and the cluster name).
func (s Security) applyTransport(tc *transport.Config) error {
	t, err := s.TLS.transport()
	if err != nil {
		return err
	}
	tc.TLS = t
	if s.JoinSecret != "" {
		mac := hmac.New(sha256.New, []byte(s.JoinSecret))
		mac.Write([]byte("gridmap-transport-v1\x00" + s.ClusterName))
		tc.Secret = mac.Sum(nil)
	}
	return nil
}

// applyControl sets the control plane settings that come from s.
func (s Security) applyControl(cc *control.Config) {
	cc.VerifyTransport = s.TLS.enabled()
	cc.GossipKeys = s.GossipKeys
	if s.ClusterName != "" || s.JoinSecret != "" {
		cc.Admission = &membership.Admission{ClusterName: s.ClusterName, Secret: []byte(s.JoinSecret)}
	}
}

// joinError turns the control plane's refusal into ErrJoinRefused.
func joinError(err error) error {
	if errors.Is(err, control.ErrJoinRefused) {
		return fmt.Errorf("%w: %w", ErrJoinRefused, err)
	}
	return err
}

// Cluster-wide gossip key rotation. memberlist keeps a keyring per member; these calls apply a
// step to every member alive in this member's gossip view, this one included, over the member
// transport (enable TLS so that the key travels encrypted), and fail with an error naming each
// member that failed. A rotation is three calls, each repeated until it succeeds everywhere:
//
//  1. InstallGossipKey(new): every member decrypts with it.
//  2. UseGossipKey(new): every member encrypts with it (and installs it first if needed).
//  3. RemoveGossipKey(old): nobody accepts the old key any more.
//
// A member that starts during a rotation must be configured with keys the cluster accepts
// and sends: before step 2, the old key first (the new one may follow); from step 2 on, the
// new key first, the old one second until step 3. A member that joined during a step and
// missed it is brought up to date by repeating that step (or by the next one: UseGossipKey
// installs the key too); GossipKeys shows every member's keys.

// InstallGossipKey adds key to the keyring of every member (see the rotation steps above).
func (c *Cluster) InstallGossipKey(ctx context.Context, key []byte) error {
	_, err := c.m.node.KeyOpAll(ctx, control.KeyInstall, key)
	return err
}

// UseGossipKey makes key, installed first where it is missing, the key every member encrypts
// gossip with.
func (c *Cluster) UseGossipKey(ctx context.Context, key []byte) error {
	_, err := c.m.node.KeyOpAll(ctx, control.KeyUse, key)
	return err
}

// RemoveGossipKey removes key from every member's keyring. Removing the key in use fails.
func (c *Cluster) RemoveGossipKey(ctx context.Context, key []byte) error {
	_, err := c.m.node.KeyOpAll(ctx, control.KeyRemove, key)
	return err
}

// GossipKeys returns, by member ID, the IDs of each alive member's gossip keys (see
// GossipKeyID), the key in use first. When some members fail to answer, it returns the others'
// and an error naming those.
func (c *Cluster) GossipKeys(ctx context.Context) (map[partition.MemberID][]string, error) {
	return c.m.node.KeyOpAll(ctx, control.KeyList, nil)
}

// GossipKeyID names a gossip key without revealing it (a prefix of its SHA-256, in hex), as
// GossipKeys reports it.
func GossipKeyID(key []byte) string { return membership.KeyID(key) }
