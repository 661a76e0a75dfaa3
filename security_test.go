package gridmap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/certgen"
	"github.com/gridmap/gridmap/internal/transport"
)

// logSink collects the logs of several members for assertions.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *logSink) logger() *slog.Logger { return slog.New(slog.NewTextHandler(s, nil)) }

func devCerts(t testing.TB, n int) certgen.Files {
	t.Helper()
	f, err := certgen.WriteDir(t.TempDir(), n, []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var (
	testKey1 = bytes.Repeat([]byte{0x11}, 32)
	testKey2 = bytes.Repeat([]byte{0x22}, 16)
)

const testSecret = "sixteen+ bytes of join secret"

func secured(f certgen.Files, i int, keys ...[]byte) Security {
	return Security{
		TLS:         TLSConfig{CertFile: f.Certs[i], KeyFile: f.Keys[i], CAFile: f.CA},
		GossipKeys:  keys,
		ClusterName: "prod",
		JoinSecret:  testSecret,
	}
}

// startRefused starts a member that should not get in and returns Start's error.
func startRefused(t *testing.T, seeds []*Member, timeout time.Duration, mod func(*Config)) error {
	t.Helper()
	var addrs []string
	for _, m := range seeds {
		addrs = append(addrs, m.GossipAddr())
	}
	cfg := testConfig(freeGossipAddr(t), addrs, 1)
	mod(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := Start(ctx, cfg)
	if err == nil {
		m.kill()
		t.Fatal("a member with wrong credentials started")
	}
	t.Logf("Start: %v", err)
	return err
}

// TestSecuredClusterRefusesStrangers: a 3-member cluster with TLS, gossip encryption, a cluster
// name and a join secret serves maps; a member with the wrong join secret, another cluster's
// name, no gossip key, or a certificate from another CA does not get in (Start fails with a
// clear error, the cluster logs its address), and a plaintext client on the member port gets
// nothing. The cluster keeps its three members and its data.
func TestSecuredClusterRefusesStrangers(t *testing.T) {
	certs := devCerts(t, 5)
	var logs logSink
	members := startCluster(t, 3, func(c *Config) {
		i := int(c.Name[1] - '0')
		c.Security = secured(certs, i, testKey1)
		c.Logger = logs.logger()
	})
	m0, err := GetMap[string, string](members[0], "secured")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m0.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	t.Run("wrong join secret", func(t *testing.T) {
		err := startRefused(t, members, 20*time.Second, func(c *Config) {
			c.Security = secured(certs, 3, testKey1)
			c.Security.JoinSecret = "another secret, just as long"
		})
		if !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), "join secret") {
			t.Fatalf("Start: %v, want ErrJoinRefused naming the join secret", err)
		}
	})
	t.Run("other cluster name", func(t *testing.T) {
		err := startRefused(t, members, 20*time.Second, func(c *Config) {
			c.Security = secured(certs, 3, testKey1)
			c.Security.ClusterName = "staging"
		})
		if !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), "cluster name") {
			t.Fatalf("Start: %v, want ErrJoinRefused naming the cluster name", err)
		}
	})
	waitFor(t, func() bool { return strings.Count(logs.String(), "refused member: cluster name or join secret") >= 2 })

	t.Run("certificate from another CA", func(t *testing.T) {
		other := devCerts(t, 1)
		err := startRefused(t, members, 20*time.Second, func(c *Config) {
			c.Security = secured(other, 0, testKey1)
		})
		if !errors.Is(err, ErrJoinRefused) || !errors.Is(err, transport.ErrTLSHandshake) {
			t.Fatalf("Start: %v, want ErrJoinRefused wrapping transport.ErrTLSHandshake", err)
		}
		waitFor(t, func() bool {
			s := logs.String()
			return strings.Contains(s, "TLS handshake failed") && strings.Contains(s, "refused member: its transport failed the admission probe")
		})
	})
	t.Run("wrong gossip key", func(t *testing.T) {
		err := startRefused(t, members, 20*time.Second, func(c *Config) {
			c.Security = secured(certs, 4, testKey2)
		})
		if !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), "gossip keys do not match") {
			t.Fatalf("Start: %v, want ErrJoinRefused naming the gossip keys", err)
		}
		waitFor(t, func() bool {
			return strings.Contains(strings.ToLower(logs.String()), "no installed keys could decrypt the message from=127.0.0.1:")
		})
	})
	t.Run("no gossip key", func(t *testing.T) {
		err := startRefused(t, members, 20*time.Second, func(c *Config) {
			c.Security = secured(certs, 4)
		})
		if !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), "gossip keys do not match") {
			t.Fatalf("Start: %v, want ErrJoinRefused naming the gossip keys", err)
		}
		// memberlist refuses the unencrypted stream and logs the sender's address.
		waitFor(t, func() bool { return strings.Contains(logs.String(), "is not encrypted from=127.0.0.1:") })
	})
	t.Run("plaintext client on the member port", func(t *testing.T) {
		nc, err := net.Dial("tcp", members[0].addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
		frame := transport.AppendFrame([]byte{'G'}, transport.Frame{Kind: transport.KindRequest, Type: 10, ID: 1, Body: []byte("get k")})
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(nc)
		if len(got) != 0 {
			t.Fatalf("a plaintext client got %d bytes: %q", len(got), got)
		}
		waitFor(t, func() bool { return strings.Contains(logs.String(), "remote="+nc.LocalAddr().String()) })
	})

	for _, m := range members {
		if n := len(m.Cluster().Members()); n != 3 {
			t.Fatalf("cluster has %d members after the refusals, want 3: %+v", n, m.Cluster().Members())
		}
	}
	m2, err := GetMap[string, string](members[2], "secured")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := m2.Get(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("Get after the refusals: %q, %v", v, err)
	}
}

// TestGossipKeyRotationWithJoins rotates the gossip key of a running cluster while members
// join in the middle of the rotation; afterwards every member uses only the new key, the maps
// work, and a member with only the old key cannot join.
func TestGossipKeyRotationWithJoins(t *testing.T) {
	certs := devCerts(t, 6)
	members := startCluster(t, 3, func(c *Config) {
		c.Security = secured(certs, int(c.Name[1]-'0'), testKey1)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := members[0].Cluster()
	if err := cl.InstallGossipKey(ctx, testKey2); err != nil {
		t.Fatal(err)
	}
	// Joins after the install, configured with the old key only: it misses the install.
	d := join(t, members, func(c *Config) { c.Security = secured(certs, 3, testKey1) })
	members = append(members, d)
	waitSettled(t, members...)
	if err := cl.UseGossipKey(ctx, testKey2); err != nil { // installs on d too
		t.Fatal(err)
	}
	// Joins after the switch: the new key first, the old one until it is removed.
	e := join(t, members, func(c *Config) { c.Security = secured(certs, 4, testKey2, testKey1) })
	members = append(members, e)
	waitSettled(t, members...)
	if err := cl.RemoveGossipKey(ctx, testKey1); err != nil {
		t.Fatal(err)
	}
	keys, err := e.Cluster().GossipKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 5 {
		t.Fatalf("GossipKeys lists %d members, want 5: %v", len(keys), keys)
	}
	for id, ids := range keys {
		if len(ids) != 1 || ids[0] != GossipKeyID(testKey2) {
			t.Fatalf("member %s keys %v, want only %s", id, ids, GossipKeyID(testKey2))
		}
	}
	if err := cl.RemoveGossipKey(ctx, testKey2); err == nil {
		t.Fatal("removing the key in use succeeded")
	}
	// The cluster still gossips and serves: a member left and everyone noticed, maps work.
	mp, err := GetMap[string, int](e, "rotated")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := mp.Put(ctx, string(rune('a'+i)), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	members = []*Member{members[0], members[1], members[2], e}
	waitSettled(t, members...)
	if err := startRefused(t, members, 20*time.Second, func(c *Config) {
		c.Security = secured(certs, 5, testKey1)
	}); !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), "gossip keys do not match") {
		t.Fatalf("Start with the removed key: %v, want ErrJoinRefused naming the gossip keys", err)
	}
}

func TestSecurityValidate(t *testing.T) {
	certs := devCerts(t, 1)
	other := devCerts(t, 1)
	cases := map[string]struct {
		sec  Security
		want []string
	}{
		"valid": {sec: secured(certs, 0, testKey1, testKey2)},
		"bad keys": {sec: Security{GossipKeys: [][]byte{make([]byte, 15), testKey1, testKey1}},
			want: []string{"GossipKeys[0] is 15 bytes", "GossipKeys[2] repeats"}},
		"short secret": {sec: Security{JoinSecret: "short"}, want: []string{"JoinSecret is 5 bytes"}},
		"long name":    {sec: Security{ClusterName: strings.Repeat("x", 65)}, want: []string{"ClusterName is 65 bytes"}},
		"missing key file": {sec: Security{TLS: TLSConfig{CertFile: certs.Certs[0], CAFile: certs.CA}},
			want: []string{"CertFile, KeyFile and CAFile are all required"}},
		"foreign CA": {sec: Security{TLS: TLSConfig{CertFile: certs.Certs[0], KeyFile: certs.Keys[0], CAFile: other.CA}},
			want: []string{"does not chain"}},
		"absent file": {sec: Security{TLS: TLSConfig{CertFile: "/nonexistent.pem", KeyFile: certs.Keys[0], CAFile: certs.CA}},
			want: []string{"/nonexistent.pem"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := Config{Security: tc.sec}.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate: %v, want ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestJoinSecretWithoutTLS: with only a cluster name and a join secret, a process that does not
// know the secret gets nothing but the challenge on the member port, a transport client with
// another secret is refused, and a member with another secret does not get in; the members log
// the refused addresses and keep serving.
func TestJoinSecretWithoutTLS(t *testing.T) {
	var logs logSink
	members := startCluster(t, 2, func(c *Config) {
		c.Security = Security{ClusterName: "prod", JoinSecret: testSecret}
		c.Logger = logs.logger()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mp, err := GetMap[string, string](members[0], "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := mp.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	raw, err := net.Dial("tcp", members[1].addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
	frame := transport.AppendFrame([]byte{'G'}, transport.Frame{Kind: transport.KindRequest, Type: 10, ID: 1, Body: []byte("get k")})
	if _, err := raw.Write(frame); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(raw)
	if len(got) != 32 {
		t.Fatalf("a raw client got %d bytes, want only the 32-byte challenge", len(got))
	}

	c, err := transport.NewClient(transport.Config{Secret: []byte("a transport secret of the wrong kind")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Call(ctx, members[1].addr, transport.Message{Type: 10, Header: []byte{0x80}}); !errors.Is(err, transport.ErrUnauthorized) {
		t.Fatalf("transport client with another secret: %v, want ErrUnauthorized", err)
	}
	if err := startRefused(t, members, 20*time.Second, func(c *Config) {
		c.Security = Security{ClusterName: "prod", JoinSecret: "not the secret of this cluster"}
	}); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("Start with another secret: %v, want ErrJoinRefused", err)
	}
	waitFor(t, func() bool {
		s := logs.String()
		return strings.Contains(s, "secret handshake failed") && strings.Contains(s, "remote="+raw.LocalAddr().String()) &&
			strings.Contains(s, "refused member: cluster name or join secret")
	})
	if v, err := GetMap[string, string](members[1], "m"); err != nil {
		t.Fatal(err)
	} else if got, err := v.Get(ctx, "k"); err != nil || got != "v" {
		t.Fatalf("Get: %q %v", got, err)
	}
}

// TestTLSCertificateRotation renews the members' certificates on disk, and then rotates the CA
// through a bundle of both CAs, while the cluster runs: members present the new certificates
// at their next handshakes, a member started with a certificate of the new CA joins, and the
// maps keep working throughout.
func TestTLSCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	oldCA, err := certgen.NewCA("old CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := certgen.NewCA("new CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// writeAtomically replaces a file as rotation tools do: write aside, then rename.
	writeAtomically := func(path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	files := func(i int) TLSConfig {
		return TLSConfig{
			CertFile: filepath.Join(dir, fmt.Sprintf("m%d.pem", i)),
			KeyFile:  filepath.Join(dir, fmt.Sprintf("m%d-key.pem", i)),
			CAFile:   filepath.Join(dir, fmt.Sprintf("m%d-ca.pem", i)),
		}
	}
	issue := func(i int, ca *certgen.CA, bundle ...*certgen.CA) {
		t.Helper()
		p, err := ca.Member(fmt.Sprintf("m%d", i), []string{"127.0.0.1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		f := files(i)
		var cas []byte
		for _, c := range bundle {
			cas = append(cas, c.CertPEM...)
		}
		writeAtomically(f.CAFile, cas)
		writeAtomically(f.KeyFile, p.KeyPEM)
		writeAtomically(f.CertFile, p.CertPEM)
	}
	for i := range 3 {
		issue(i, oldCA, oldCA)
	}
	members := startCluster(t, 2, func(c *Config) {
		c.Security.TLS = files(int(c.Name[1] - '0'))
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mp, err := GetMap[string, int](members[0], "rotation")
	if err != nil {
		t.Fatal(err)
	}
	put := func(k string) {
		t.Helper()
		if err := mp.Put(ctx, k, len(k)); err != nil {
			t.Fatalf("Put %s: %v", k, err)
		}
	}
	put("before")
	// servedBy returns the issuer of the certificate member 0 presents now.
	servedBy := func(roots ...*certgen.CA) string {
		t.Helper()
		pool := x509.NewCertPool()
		for _, r := range roots {
			pool.AddCert(r.Cert)
		}
		cert, err := tls.LoadX509KeyPair(files(2).CertFile, files(2).KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := tls.Dial("tcp", members[0].addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatalf("handshake with member 0: %v", err)
		}
		defer nc.Close()
		return nc.ConnectionState().PeerCertificates[0].Issuer.CommonName
	}

	// Step 1: every member trusts both CAs (the old certificates stay valid).
	for i := range 3 {
		issue(i, oldCA, oldCA, newCA)
	}
	// Step 2: every member gets a certificate of the new CA.
	for i := range 2 {
		issue(i, newCA, oldCA, newCA)
	}
	if got := servedBy(oldCA, newCA); got != "new CA" {
		t.Fatalf("member 0 presents a certificate of %q after renewal, want the new CA", got)
	}
	put("renewed")
	// Step 3: the old CA goes; a member with a certificate of the new CA joins.
	for i := range 3 {
		issue(i, newCA, newCA)
	}
	third := join(t, members, func(c *Config) { c.Security.TLS = files(2) })
	members = append(members, third)
	waitSettled(t, members...)
	put("after")
	m3, err := GetMap[string, int](third, "rotation")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"before", "renewed", "after"} {
		if v, err := m3.Get(ctx, k); err != nil || v != len(k) {
			t.Fatalf("Get %s on the new member: %d, %v", k, v, err)
		}
	}
	// A member still holding a certificate of the retired CA is refused.
	stale, err := oldCA.Member("stale", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sf := TLSConfig{CertFile: filepath.Join(dir, "stale.pem"), KeyFile: filepath.Join(dir, "stale-key.pem"), CAFile: filepath.Join(dir, "stale-ca.pem")}
	writeAtomically(sf.CertFile, stale.CertPEM)
	writeAtomically(sf.KeyFile, stale.KeyPEM)
	writeAtomically(sf.CAFile, append(append([]byte{}, oldCA.CertPEM...), newCA.CertPEM...))
	if err := startRefused(t, members, 20*time.Second, func(c *Config) { c.Security.TLS = sf }); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("Start with a certificate of the retired CA: %v, want ErrJoinRefused", err)
	}
}
