package transport

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var (
	goodSecret  = []byte("the cluster's shared secret")
	otherSecret = []byte("another cluster's secret!!!")
)

func TestSecretHandshake(t *testing.T) {
	s := startServer(t, Config{Secret: goodSecret})
	c := newClient(t, Config{Secret: goodSecret})
	mustEcho(t, c, s.addr, "hdr", "body")
	mustEcho(t, c, s.addr, "bulk", strings.Repeat("y", 1<<20))

	// Raft connections too.
	layer := s.RaftLayer(nil)
	defer layer.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		if nc, err := layer.Accept(); err == nil {
			acc <- nc
		}
	}()
	dialer := startServer(t, Config{Secret: goodSecret})
	out, err := dialer.RaftLayer(nil).Dial(raft.ServerAddress(s.addr), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-acc:
		defer in.Close()
		buf := make([]byte, 4)
		_ = in.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("raft read %q %v", buf, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("raft connection not accepted")
	}
	stranger := startServer(t, Config{Secret: otherSecret})
	if _, err := stranger.RaftLayer(nil).Dial(raft.ServerAddress(s.addr), 5*time.Second); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("raft dial with another secret: %v, want ErrUnauthorized", err)
	}
}

// TestSecretRefusesStrangers: a client with another secret, a client without one, and a raw
// TCP client sending a valid frame are refused and get no answer; the server logs their
// addresses; a legitimate client is still served.
func TestSecretRefusesStrangers(t *testing.T) {
	var logs logBuffer
	s := startServer(t, Config{Secret: goodSecret, DialTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	wrong := newClient(t, Config{Secret: otherSecret})
	if _, err := wrong.Call(ctxT(t), s.addr, Message{Type: msgEcho}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("other secret: %v, want ErrUnauthorized", err)
	}
	none := newClient(t, Config{})
	if _, err := none.CallTimeout(ctxT(t), s.addr, Message{Type: msgEcho, Body: []byte("x")}, 5*time.Second); err == nil {
		t.Fatal("a client without the secret was answered")
	}

	raw, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Write(append([]byte{'G'}, mustFrame(t)...)); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(raw)
	// The challenge (a random nonce) and nothing else: no answer to the frame.
	if len(got) != authNonce {
		t.Fatalf("raw client got %d bytes, want only the %d-byte challenge", len(got), authNonce)
	}
	waitFor(t, "refusals logged with addresses", func() bool {
		out := logs.String()
		return strings.Count(out, "secret handshake failed") >= 3 && strings.Contains(out, "remote="+raw.LocalAddr().String())
	})

	// A secret client against a server without one gets no challenge.
	plain := startServer(t, Config{})
	c := newClient(t, Config{Secret: goodSecret, DialTimeout: 300 * time.Millisecond})
	if _, err := c.Call(ctxT(t), plain.addr, Message{Type: msgEcho}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("secret client to plain server: %v, want ErrUnauthorized", err)
	}

	good := newClient(t, Config{Secret: goodSecret})
	mustEcho(t, good, s.addr, "still", "serving")
}

// TestSecretInsideTLS: both on, the handshake runs inside TLS.
func TestSecretInsideTLS(t *testing.T) {
	f := certDir(t, 2)
	s := startServer(t, Config{TLS: tlsFromFiles(t, f, 0), Secret: goodSecret})
	c := newClient(t, Config{TLS: tlsFromFiles(t, f, 1), Secret: goodSecret})
	mustEcho(t, c, s.addr, "both", "on")
	wrong := newClient(t, Config{TLS: tlsFromFiles(t, f, 1), Secret: otherSecret})
	if _, err := wrong.Call(ctxT(t), s.addr, Message{Type: msgEcho}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("right certificate, other secret: %v, want ErrUnauthorized", err)
	}
}

// FuzzAuthServer feeds the server side of the secret handshake arbitrary answers: it must never
// accept one that is not the MAC of its own fresh challenge, and never panic.
func FuzzAuthServer(f *testing.F) {
	f.Add([]byte{'G'})
	f.Add(append([]byte{'G'}, make([]byte, authNonce+authMAC)...))
	f.Add(append([]byte{'R'}, make([]byte, authNonce+authMAC+10)...))
	f.Add(mustFrame(f))
	f.Fuzz(func(t *testing.T, answer []byte) {
		srv, cli := net.Pipe()
		defer srv.Close()
		defer cli.Close()
		go func() {
			// Read the challenge, send the fuzzed answer and hang up, so that a short answer
			// fails at once rather than at the deadline.
			var nonce [authNonce]byte
			if _, err := io.ReadFull(cli, nonce[:]); err != nil {
				return
			}
			_, _ = cli.Write(answer)
			_ = cli.Close()
		}()
		_, err := authServer(srv, goodSecret, 200*time.Millisecond)
		if err == nil {
			t.Fatalf("the server accepted a forged answer %x", answer)
		}
	})
}
