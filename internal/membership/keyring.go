package membership

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Gossip key rotation on this member. memberlist's keyring is per member: rotating a cluster's
// key means calling these on every member, in order (install everywhere, then use everywhere,
// then remove the old key everywhere), which the control plane does for the whole cluster.

// InstallKey adds key to this member's keyring: it decrypts with it from now on, and still
// encrypts with the primary key. Installing a key twice is a no-op.
func (l *List) InstallKey(key []byte) error {
	if l.keyring == nil {
		return ErrNoKeyring
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return fmt.Errorf("%w: gossip key: %w", ErrConfig, err)
	}
	return l.keyring.AddKey(key)
}

// UseKey makes an installed key the primary key: this member encrypts with it from now on.
func (l *List) UseKey(key []byte) error {
	if l.keyring == nil {
		return ErrNoKeyring
	}
	if err := l.keyring.UseKey(key); err != nil {
		return fmt.Errorf("membership: use gossip key %s: %w", KeyID(key), err)
	}
	return nil
}

// RemoveKey removes a key from this member's keyring. The primary key cannot be removed.
func (l *List) RemoveKey(key []byte) error {
	if l.keyring == nil {
		return ErrNoKeyring
	}
	if err := l.keyring.RemoveKey(key); err != nil {
		return fmt.Errorf("membership: remove gossip key %s: %w", KeyID(key), err)
	}
	return nil
}

// KeyIDs returns the IDs (see KeyID) of this member's keys, the primary key first. Nil when
// gossip is not encrypted.
func (l *List) KeyIDs() []string {
	if l.keyring == nil {
		return nil
	}
	keys := l.keyring.GetKeys() // primary first
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = KeyID(k)
	}
	return out
}

// KeyID names a gossip key without revealing it: the first 8 bytes of its SHA-256, in hex.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// keyMismatch reports whether a join failed because the seeds' gossip is encrypted with keys
// this member does not have, or only one side encrypts (memberlist's errors carry no type:
// these are its messages, pinned by TestJoinWithWrongKeyIsRefused).
func keyMismatch(err error) bool {
	if err == nil {
		return false
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no installed keys could decrypt") || // keys differ
		strings.Contains(s, "remote state is not encrypted") || // this member encrypts, the seeds do not
		strings.Contains(s, "remote state is encrypted and encryption is not configured") // the reverse
}
