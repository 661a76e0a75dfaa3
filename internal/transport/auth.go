package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"time"
)

// Connection authentication with a shared secret (Config.Secret): before any gridmap or raft
// byte, each side proves it knows the secret, so that a process without it can neither read
// nor write. The server speaks first, with a fresh nonce; the dialer answers with the protocol
// byte, its own nonce and a MAC of both nonces; the server checks it (in constant time) and
// answers with its own MAC, which the dialer checks. Nonces make every MAC single-use: a
// recorded handshake cannot be replayed. The secret authenticates; it does not encrypt: use TLS
// for that (both can be on; the secret is then checked inside TLS).
const (
	authNonce = 32
	authMAC   = sha256.Size
)

// authMACOf is the MAC of side ('c' dialer, 's' server) over the handshake.
func authMACOf(secret []byte, side, proto byte, nonceS, nonceC []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("gridmap-conn-v1"))
	m.Write([]byte{0, side, proto})
	m.Write(nonceS)
	m.Write(nonceC)
	return m.Sum(nil)
}

// authServer runs the server side on nc and returns the protocol byte the dialer chose.
func authServer(nc net.Conn, secret []byte, timeout time.Duration) (byte, error) {
	_ = nc.SetDeadline(time.Now().Add(timeout))
	var nonceS [authNonce]byte
	if _, err := rand.Read(nonceS[:]); err != nil {
		return 0, err
	}
	if _, err := nc.Write(nonceS[:]); err != nil {
		return 0, err
	}
	var in [1 + authNonce + authMAC]byte
	if _, err := io.ReadFull(nc, in[:]); err != nil {
		return 0, fmt.Errorf("%w: no answer to the challenge: %w", ErrUnauthorized, err)
	}
	proto, nonceC, mac := in[0], in[1:1+authNonce], in[1+authNonce:]
	if !hmac.Equal(mac, authMACOf(secret, 'c', proto, nonceS[:], nonceC)) {
		return 0, fmt.Errorf("%w: the dialer does not know the secret", ErrUnauthorized)
	}
	if _, err := nc.Write(authMACOf(secret, 's', proto, nonceS[:], nonceC)); err != nil {
		return 0, err
	}
	_ = nc.SetDeadline(time.Time{})
	return proto, nil
}

// authClient runs the dialer side on nc, choosing protocol proto.
func authClient(nc net.Conn, secret []byte, proto byte, timeout time.Duration) error {
	_ = nc.SetDeadline(time.Now().Add(timeout))
	var nonceS [authNonce]byte
	if _, err := io.ReadFull(nc, nonceS[:]); err != nil {
		return fmt.Errorf("%w: no challenge from the server (does it use a secret?): %w", ErrUnauthorized, err)
	}
	out := make([]byte, 1+authNonce, 1+authNonce+authMAC)
	out[0] = proto
	if _, err := rand.Read(out[1:]); err != nil {
		return err
	}
	nonceC := out[1:]
	out = append(out, authMACOf(secret, 'c', proto, nonceS[:], nonceC)...)
	if _, err := nc.Write(out); err != nil {
		return err
	}
	var mac [authMAC]byte
	if _, err := io.ReadFull(nc, mac[:]); err != nil {
		return fmt.Errorf("%w: the server refused this member's secret: %w", ErrUnauthorized, err)
	}
	if !hmac.Equal(mac[:], authMACOf(secret, 's', proto, nonceS[:], nonceC)) {
		return fmt.Errorf("%w: the server does not know the secret", ErrUnauthorized)
	}
	_ = nc.SetDeadline(time.Time{})
	return nil
}
