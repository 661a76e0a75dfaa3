package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/gridmap/gridmap/internal/certgen"
)

// certDir writes a CA and n member certificates for 127.0.0.1 into a temporary folder.
func certDir(t testing.TB, n int) certgen.Files {
	t.Helper()
	f, err := certgen.WriteDir(t.TempDir(), n, []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tlsFromFiles(t testing.TB, f certgen.Files, i int) *TLS {
	t.Helper()
	tl, err := NewTLSFromFiles(f.Certs[i], f.Keys[i], f.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// logBuffer collects a logger's output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestTLSCall(t *testing.T) {
	f := certDir(t, 2)
	s := startServer(t, Config{TLS: tlsFromFiles(t, f, 0)})
	c := newClient(t, Config{TLS: tlsFromFiles(t, f, 1)})
	mustEcho(t, c, s.addr, "hdr", "body")
	mustEcho(t, c, s.addr, "large", strings.Repeat("x", 1<<20)) // bulk lane, writev path
}

func TestTLSFromConfig(t *testing.T) {
	f := certDir(t, 2)
	cert, pool, err := LoadTLSFiles(f.Certs[0], f.Keys[0], f.CA)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := NewTLSFromConfig(&tls.Config{Certificates: []tls.Certificate{*cert}, RootCAs: pool, ClientCAs: pool}, "")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{TLS: tl})
	c := newClient(t, Config{TLS: tlsFromFiles(t, f, 1)})
	mustEcho(t, c, s.addr, "a", "b")
	if _, err := NewTLSFromConfig(&tls.Config{Certificates: []tls.Certificate{*cert}}, ""); err == nil {
		t.Fatal("a config without CA pools was accepted")
	}
}

// TestTLSRefusesStrangers: a client whose certificate another CA signed, a client with no
// certificate, and a plaintext client all get nothing, and the server logs their addresses.
func TestTLSRefusesStrangers(t *testing.T) {
	f := certDir(t, 1)
	other := certDir(t, 1)
	var logs logBuffer
	s := startServer(t, Config{TLS: tlsFromFiles(t, f, 0), Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	c := newClient(t, Config{TLS: tlsFromFiles(t, other, 0), DialTimeout: 5 * time.Second})
	_, err := c.Call(ctxT(t), s.addr, Message{Type: msgEcho, Body: []byte("x")})
	if !errors.Is(err, ErrTLSHandshake) {
		t.Fatalf("foreign CA: %v, want ErrTLSHandshake", err)
	}

	// No client certificate at all, but trusting the server.
	_, pool, err := LoadTLSFiles(f.Certs[0], f.Keys[0], f.CA)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err == nil {
		// TLS 1.3 reports the server's refusal of the missing certificate at the first read.
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = nc.Write(append([]byte{'G'}, mustFrame(t)...))
		_, err = io.ReadAll(nc)
		nc.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was answered")
	}

	// Plain TCP speaking the gridmap protocol: a valid frame gets no answer.
	plain, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_ = plain.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := plain.Write(append([]byte{'G'}, mustFrame(t)...)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(plain)
	if err != nil && !isReset(err) {
		t.Fatalf("plain client: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("plain client got %d bytes: %q", len(got), got)
	}
	waitFor(t, "three refusals logged with the address", func() bool {
		return strings.Count(logs.String(), "TLS handshake failed") >= 3 && strings.Contains(logs.String(), "remote=127.0.0.1:")
	})
	// A legitimate client still works.
	good := newClient(t, Config{TLS: tlsFromFiles(t, f, 0)})
	mustEcho(t, good, s.addr, "still", "serving")
}

func mustFrame(t testing.TB) []byte {
	t.Helper()
	return AppendFrame(nil, Frame{Kind: KindRequest, Type: msgEcho, ID: 1, Body: []byte("hello")})
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

// TestTLSPlainClientRefusedByTLSServer: a member without TLS cannot call a member with TLS,
// and a member with TLS cannot call a plain one.
func TestTLSPlainMismatch(t *testing.T) {
	f := certDir(t, 1)
	s := startServer(t, Config{TLS: tlsFromFiles(t, f, 0)})
	plain := newClient(t, Config{})
	if _, err := plain.CallTimeout(ctxT(t), s.addr, Message{Type: msgEcho}, 5*time.Second); err == nil {
		t.Fatal("a plaintext client was answered by a TLS server")
	}
	ps := startServer(t, Config{})
	c := newClient(t, Config{TLS: tlsFromFiles(t, f, 0)})
	if _, err := c.CallTimeout(ctxT(t), ps.addr, Message{Type: msgEcho}, 5*time.Second); !errors.Is(err, ErrTLSHandshake) {
		t.Fatalf("TLS client to plain server: %v, want ErrTLSHandshake", err)
	}
}

func TestTLSRaftLayer(t *testing.T) {
	f := certDir(t, 2)
	srv := startServer(t, Config{TLS: tlsFromFiles(t, f, 0)})
	layer := srv.RaftLayer(nil)
	defer layer.Close()
	dialer := startServer(t, Config{TLS: tlsFromFiles(t, f, 1)})
	acc := make(chan net.Conn, 1)
	go func() {
		nc, err := layer.Accept()
		if err == nil {
			acc <- nc
		}
	}()
	out, err := dialer.RaftLayer(nil).Dial(raft.ServerAddress(srv.addr), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, ok := out.(*tls.Conn); !ok {
		t.Fatalf("raft dial returned %T, want *tls.Conn", out)
	}
	if _, err := out.Write([]byte("vote")); err != nil {
		t.Fatal(err)
	}
	var in net.Conn
	select {
	case in = <-acc:
	case <-time.After(10 * time.Second):
		t.Fatal("raft connection not accepted")
	}
	defer in.Close()
	buf := make([]byte, 4)
	_ = in.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "vote" {
		t.Fatalf("read %q %v", buf, err)
	}
	// A raft dialer with a foreign certificate is refused.
	other := certDir(t, 1)
	stranger := startServer(t, Config{TLS: tlsFromFiles(t, other, 0)})
	if _, err := stranger.RaftLayer(nil).Dial(raft.ServerAddress(srv.addr), 5*time.Second); !errors.Is(err, ErrTLSHandshake) {
		t.Fatalf("foreign raft dial: %v, want ErrTLSHandshake", err)
	}
}

// TestTLSRotation replaces the certificate files of a live server and client: the open
// connection keeps working, new handshakes use the new certificates, and a CA rotated on both
// sides is honoured without a restart. A broken rotation keeps the last good files.
func TestTLSRotation(t *testing.T) {
	old := certDir(t, 2)
	dir := t.TempDir()
	files := func(tag string) (cert, key, ca string) {
		return filepath.Join(dir, tag+".pem"), filepath.Join(dir, tag+"-key.pem"), filepath.Join(dir, tag+"-ca.pem")
	}
	install := func(tag string, f certgen.Files, i int) {
		cert, key, ca := files(tag)
		for src, dst := range map[string]string{f.Certs[i]: cert, f.Keys[i]: key, f.CA: ca} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			// Write then rename, as a rotation tool does, with a later mtime.
			tmp := dst + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Duration(len(b)) * time.Millisecond)
			_ = os.Chtimes(tmp, later, later)
			if err := os.Rename(tmp, dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	install("srv", old, 0)
	install("cli", old, 1)
	sc, sk, sca := files("srv")
	cc, ck, cca := files("cli")
	stl, err := NewTLSFromFiles(sc, sk, sca, "")
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := NewTLSFromFiles(cc, ck, cca, "")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{TLS: stl})
	c := newClient(t, Config{TLS: ctl})
	mustEcho(t, c, s.addr, "before", "rotation")
	serial := func() string {
		nc, err := tls.Dial("tcp", s.addr, mustClientConfig(t, ctl, s.addr))
		if err != nil {
			t.Fatalf("probe handshake: %v", err)
		}
		defer nc.Close()
		return nc.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()

	// A new CA and new certificates on both sides.
	next := certDir(t, 2)
	install("srv", next, 0)
	install("cli", next, 1)
	mustEcho(t, c, s.addr, "open connection", "survives")
	if after := serial(); after == before {
		t.Fatal("the server still presents the old certificate after rotation")
	}
	fresh := newClient(t, Config{TLS: ctl})
	mustEcho(t, fresh, s.addr, "new dial", "new CA")
	// A client still on the old CA is now refused.
	stale := newClient(t, Config{TLS: tlsFromFiles(t, old, 1)})
	if _, err := stale.Call(ctxT(t), s.addr, Message{Type: msgEcho}); !errors.Is(err, ErrTLSHandshake) {
		t.Fatalf("old certificate after rotation: %v, want ErrTLSHandshake", err)
	}

	// A broken rotation (garbage key) keeps the last good set.
	if err := os.WriteFile(sk, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	_ = os.Chtimes(sk, later, later)
	fresh2 := newClient(t, Config{TLS: ctl})
	mustEcho(t, fresh2, s.addr, "broken rotation", "keeps last good")
}

func mustClientConfig(t testing.TB, tl *TLS, addr string) *tls.Config {
	t.Helper()
	c, err := tl.clientConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadTLSFilesErrors(t *testing.T) {
	f := certDir(t, 1)
	other := certDir(t, 1)
	if _, _, err := LoadTLSFiles(f.Certs[0], f.Keys[0], other.CA); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Fatalf("foreign CA: %v", err)
	}
	if _, _, err := LoadTLSFiles(f.Certs[0], other.Keys[0], f.CA); err == nil {
		t.Fatal("mismatched key accepted")
	}
	if _, _, err := LoadTLSFiles(f.Certs[0], f.Keys[0], filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("missing CA accepted")
	}
	if _, err := NewTLSFromFiles(f.Certs[0], filepath.Join(t.TempDir(), "missing-key.pem"), f.CA, ""); err == nil {
		t.Fatal("missing key accepted")
	}
}

// BenchmarkCallTLS and BenchmarkCall1MiBTLS are BenchmarkCall and BenchmarkCall1MiB over mutual
// TLS 1.3: what encryption costs the transport.
func BenchmarkCallTLS(b *testing.B) {
	f := certDir(b, 2)
	b.SetParallelism(16)
	benchCallConfig(b, 256, Config{TLS: tlsFromFiles(b, f, 0)}, Config{TLS: tlsFromFiles(b, f, 1)})
}

func BenchmarkCall1MiBTLS(b *testing.B) {
	f := certDir(b, 2)
	b.SetParallelism(2)
	benchCallConfig(b, 1<<20, Config{TLS: tlsFromFiles(b, f, 0)}, Config{TLS: tlsFromFiles(b, f, 1)})
}

// TestTLSServerRefusesClientCertificate: a dialer that trusts the server but whose own
// certificate the server does not, learns it at the dial (TLS 1.3 completes the client's
// handshake before the server verified the client), with the server's reason.
func TestTLSServerRefusesClientCertificate(t *testing.T) {
	f := certDir(t, 1)
	other := certDir(t, 1)
	s := startServer(t, Config{TLS: tlsFromFiles(t, f, 0)})
	_, serverPool, err := LoadTLSFiles(f.Certs[0], f.Keys[0], f.CA)
	if err != nil {
		t.Fatal(err)
	}
	foreign, foreignPool, err := LoadTLSFiles(other.Certs[0], other.Keys[0], other.CA)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := NewTLSFromConfig(&tls.Config{Certificates: []tls.Certificate{*foreign}, RootCAs: serverPool, ClientCAs: foreignPool}, "")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, Config{TLS: tl})
	_, err = c.Call(ctxT(t), s.addr, Message{Type: msgEcho})
	if !errors.Is(err, ErrTLSHandshake) || !strings.Contains(err.Error(), "refused this member's certificate") {
		t.Fatalf("Call: %v, want ErrTLSHandshake saying the server refused the certificate", err)
	}
	if _, err := startServer(t, Config{TLS: tl}).RaftLayer(nil).Dial(raft.ServerAddress(s.addr), 5*time.Second); !errors.Is(err, ErrTLSHandshake) {
		t.Fatalf("raft Dial: %v, want ErrTLSHandshake", err)
	}
}
