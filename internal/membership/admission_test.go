package membership

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/discovery"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSecured(t *testing.T, id string, adm *Admission, keys [][]byte, logs *syncBuffer) *List {
	t.Helper()
	cfg := Config{ID: id, TransportAddr: "127.0.0.1:9" + id[len(id)-1:], Timings: LocalTimings(), Admission: adm, GossipKeys: keys}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Shutdown() })
	return l
}

func TestAdmissionCheck(t *testing.T) {
	a := &Admission{ClusterName: "prod", Secret: []byte("0123456789abcdef")}
	m := Meta{ID: "x", TransportAddr: "10.0.0.1:7000", Cluster: "prod", Proof: string(a.proof("x", "10.0.0.1:7000"))}
	if err := a.check(m); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]Meta{
		"other cluster":   {ID: "x", TransportAddr: "10.0.0.1:7000", Cluster: "test", Proof: m.Proof},
		"other secret":    {ID: "x", TransportAddr: "10.0.0.1:7000", Cluster: "prod", Proof: string((&Admission{ClusterName: "prod", Secret: []byte("another secret!!")}).proof("x", "10.0.0.1:7000"))},
		"copied proof":    {ID: "x", TransportAddr: "10.0.0.2:7000", Cluster: "prod", Proof: m.Proof},
		"no credentials":  {ID: "x", TransportAddr: "10.0.0.1:7000"},
		"truncated proof": {ID: "x", TransportAddr: "10.0.0.1:7000", Cluster: "prod", Proof: m.Proof[:8]},
	} {
		if err := a.check(bad); err == nil {
			t.Errorf("%s: admitted", name)
		}
	}
}

// TestAdmissionRefusesOtherCluster: two clusters with the same name and different secrets (and
// one without credentials) never merge; the joiner learns it was refused, and the refusing
// member logs the joiner's address.
func TestAdmissionRefusesOtherCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	good := &Admission{ClusterName: "prod", Secret: []byte("the right secret")}
	var logs syncBuffer
	a := newSecured(t, "m1", good, nil, &logs)
	b := newSecured(t, "m2", good, nil, nil)
	if err := b.Join(ctx, discovery.Static{a.GossipAddr()}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a sees b", func() bool { return a.NumAlive() == 2 })

	for _, adm := range []*Admission{
		{ClusterName: "prod", Secret: []byte("a wrong secret!!")},
		{ClusterName: "staging", Secret: good.Secret},
	} {
		x := newSecured(t, "m3", adm, nil, nil)
		_, err := x.TryJoin(ctx, discovery.Static{a.GossipAddr()})
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("join with %+v: %v, want ErrRefused", adm, err)
		}
		if x.NumAlive() != 1 {
			t.Fatalf("refused member sees %d alive", x.NumAlive())
		}
		x.Shutdown()
	}
	// A member without any credentials merges the cluster's view (it checks nothing), but the
	// cluster never admits it.
	plain := newList(t, "m4")
	_, _ = plain.TryJoin(ctx, discovery.Static{a.GossipAddr()})
	eventually(t, 5*time.Second, "refusals logged with the address", func() bool {
		s := logs.String()
		return strings.Count(s, "refused member") >= 3 && strings.Contains(s, "addr=127.0.0.1:")
	})
	for _, l := range []*List{a, b} {
		if n := l.NumAlive(); n != 2 {
			t.Fatalf("cluster member sees %d alive, want 2: %+v", n, l.Members())
		}
	}
}

// TestGossipKeyRotation: three members rotate their key (install, use, remove) while a fourth
// joins in the middle with the new key first; a member with only the old key cannot join
// afterwards, nor one without any key.
func TestGossipKeyRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	var ls []*List
	for _, id := range []string{"m1", "m2", "m3"} {
		ls = append(ls, newSecured(t, id, nil, [][]byte{k1}, nil))
	}
	for _, l := range ls[1:] {
		if err := l.Join(ctx, discovery.Static{ls[0].GossipAddr()}, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	all := func(n int) {
		for _, l := range ls {
			eventually(t, 10*time.Second, "all alive", func() bool { return l.NumAlive() == n })
		}
	}
	all(3)
	for _, l := range ls {
		if err := l.InstallKey(k2); err != nil {
			t.Fatal(err)
		}
	}
	// Joins in the middle, configured for after the rotation.
	d := newSecured(t, "m4", nil, [][]byte{k2, k1}, nil)
	if err := d.Join(ctx, discovery.Static{ls[0].GossipAddr()}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ls = append(ls, d)
	all(4)
	for _, l := range ls {
		if err := l.UseKey(k2); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range ls {
		if err := l.RemoveKey(k1); err != nil {
			t.Fatal(err)
		}
		if ids := l.KeyIDs(); len(ids) != 1 || ids[0] != KeyID(k2) {
			t.Fatalf("keys after rotation: %v", ids)
		}
	}
	if err := ls[0].RemoveKey(k2); err == nil {
		t.Fatal("the primary key was removed")
	}
	// The cluster still gossips: a metadata change reaches everyone.
	if err := ls[3].SetMeta(func(m *Meta) { m.InRaft = true }); err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		eventually(t, 10*time.Second, "m4 InRaft", func() bool { m, _ := stateOf(l, "m4"); return m.InRaft })
	}
	old := newSecured(t, "m5", nil, [][]byte{k1}, nil)
	if _, err := old.TryJoin(ctx, discovery.Static{ls[0].GossipAddr()}); err == nil {
		t.Fatal("a member with the removed key joined")
	}
	none := newList(t, "m6")
	if _, err := none.TryJoin(ctx, discovery.Static{ls[0].GossipAddr()}); err == nil && none.NumAlive() > 1 {
		t.Fatal("a member without a key joined")
	}
	all(4)
	plain := newList(t, "m7")
	if err := plain.InstallKey(k1); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("InstallKey without keyring: %v", err)
	}
}

func TestConfigValidateSecurity(t *testing.T) {
	cfg := Config{ID: "x", TransportAddr: "127.0.0.1:1", GossipKeys: [][]byte{make([]byte, 15)},
		Admission: &Admission{ClusterName: strings.Repeat("n", MaxClusterName+1)}}
	err := cfg.WithDefaults().Validate()
	if err == nil || !strings.Contains(err.Error(), "GossipKeys[0]") || !strings.Contains(err.Error(), "ClusterName") {
		t.Fatalf("Validate: %v", err)
	}
}

// TestJoinWithWrongKeyIsRefused: a member whose gossip keys the cluster does not use, that
// encrypts while the cluster does not, or the reverse, learns it was refused.
func TestJoinWithWrongKeyIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	a := newSecured(t, "m1", nil, [][]byte{k1}, nil)
	b := newSecured(t, "m2", nil, [][]byte{k2}, nil)
	if _, err := b.TryJoin(ctx, discovery.Static{a.GossipAddr()}); !errors.Is(err, ErrRefused) {
		t.Fatalf("wrong key: %v, want ErrRefused", err)
	}
	plain := newList(t, "m3")
	c := newSecured(t, "m4", nil, [][]byte{k1}, nil)
	if _, err := c.TryJoin(ctx, discovery.Static{plain.GossipAddr()}); !errors.Is(err, ErrRefused) {
		t.Fatalf("key against a plaintext cluster: %v, want ErrRefused", err)
	}
	if _, err := plain.TryJoin(ctx, discovery.Static{a.GossipAddr()}); !errors.Is(err, ErrRefused) {
		t.Fatalf("no key against an encrypted cluster: %v, want ErrRefused", err)
	}
	if a.NumAlive() != 1 || plain.NumAlive() != 1 {
		t.Fatalf("a refused member got in: %d, %d alive", a.NumAlive(), plain.NumAlive())
	}
}
