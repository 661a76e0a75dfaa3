package membership

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/gridmap/gridmap/internal/msgpackcheck"
)

// MaxClusterName bounds Admission.ClusterName, which travels in every member's metadata.
const MaxClusterName = 64

// Admission is a cluster's name and join secret. Every member gossips its cluster name and a
// proof that it knows the secret (an HMAC-SHA256 of the name, its ID and its transport address,
// keyed with the secret); a member refuses, in memberlist's alive and merge hooks, every member
// whose name differs or whose proof does not verify (compared in constant time). A refused
// member never enters the membership list, so the control plane never admits it to raft nor
// hands it partitions; two clusters on one network with different names or secrets never
// merge, and a joining member learns it was refused (TryJoin returns ErrRefused) because the
// cluster fails its own check too.
//
// The proof binds the member's transport address: a third party that copies it from
// plaintext gossip can only claim that same address, where the traffic reaches the real member.
// Use gossip encryption (GossipKeys) to keep metadata private, and TLS on the transport to
// authenticate the member behind an address.
type Admission struct {
	// ClusterName must be equal on every member, at most MaxClusterName bytes.
	ClusterName string
	// Secret is the join secret, equal on every member. Empty: the name alone is checked.
	Secret []byte
}

func (a *Admission) validate() error {
	if len(a.ClusterName) > MaxClusterName {
		return fmt.Errorf("Admission: ClusterName is %d bytes, at most %d", len(a.ClusterName), MaxClusterName)
	}
	return nil
}

// proof is what a member with this ID and transport address gossips as its credential.
func (a *Admission) proof(id, transportAddr string) []byte {
	mac := hmac.New(sha256.New, a.Secret)
	for _, s := range []string{"gridmap-join-v1", a.ClusterName, id, transportAddr} {
		mac.Write([]byte(s))
		mac.Write([]byte{0})
	}
	return mac.Sum(nil)[:16]
}

// check reports why a member with metadata m is not admitted, or nil.
func (a *Admission) check(m Meta) error {
	if m.Cluster != a.ClusterName {
		return fmt.Errorf("cluster name %q, want %q", m.Cluster, a.ClusterName)
	}
	if !hmac.Equal([]byte(m.Proof), a.proof(m.ID, m.TransportAddr)) {
		return errors.New("join secret does not match")
	}
	return nil
}

// refusals remembers the refused members recently logged, so that a refused member gossiping
// its alive message over and over is logged once a minute, not at every gossip round.
type refusals struct {
	mu     sync.Mutex
	logged map[string]time.Time
	last   error
}

const refusalLogEvery = time.Minute

// note records a refusal and reports whether to log it.
func (r *refusals) note(key string, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = err
	now := time.Now()
	if t, ok := r.logged[key]; ok && now.Sub(t) < refusalLogEvery {
		return false
	}
	if r.logged == nil || len(r.logged) >= 1024 {
		r.logged = make(map[string]time.Time)
	}
	r.logged[key] = now
	return true
}

// take returns and forgets the last refusal.
func (r *refusals) take() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.last
	r.last = nil
	return err
}

// admit checks node n against the admission rule; it logs and returns the refusal.
func (l *List) admit(n *memberlist.Node, how string) error {
	a := l.cfg.Admission
	if a == nil || n.Name == l.cfg.ID {
		return nil
	}
	var meta Meta
	err := msgpackcheck.Unmarshal(n.Meta, &meta)
	if err == nil {
		err = a.check(meta)
	} else {
		err = fmt.Errorf("unreadable metadata: %w", err)
	}
	if err == nil {
		return nil
	}
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	err = fmt.Errorf("member %s at %s: %w", n.Name, addr, err)
	if l.refused.note(n.Name+"@"+addr, err) {
		l.logger.Warn("membership: refused member: cluster name or join secret do not match",
			"addr", addr, "transport_addr", meta.TransportAddr, "node", n.Name, "via", how, "reason", err)
	}
	return err
}

type aliveDelegate List

func (d *aliveDelegate) NotifyAlive(n *memberlist.Node) error { return (*List)(d).admit(n, "gossip") }

type mergeDelegate List

func (d *mergeDelegate) NotifyMerge(nodes []*memberlist.Node) error {
	for _, n := range nodes {
		if err := (*List)(d).admit(n, "join"); err != nil {
			return err
		}
	}
	return nil
}
