package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// TLS makes every connection of a Client, a Server and its raft layer mutual TLS 1.3: each
// side presents a certificate and verifies the other's against the cluster's CA. Build it with
// NewTLSFromFiles (certificates rotated on disk are picked up at the next handshake) or
// NewTLSFromConfig. Only handshakes use it: connections already open keep the certificates
// they were opened with.
type TLS struct {
	// base is the configuration given to NewTLSFromConfig; nil with files.
	base *tls.Config
	// serverName is the name a dialer expects in the peer's certificate; "" means the host of
	// the address dialed.
	serverName string

	files *tlsFiles
}

// tlsFiles reloads a certificate, its key and the CA bundle when one of the files changes.
type tlsFiles struct {
	certFile, keyFile, caFile string

	mu    sync.Mutex
	stamp [3]fileStamp // of certFile, keyFile, caFile when last loaded
	cert  *tls.Certificate
	pool  *x509.CertPool
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewTLSFromFiles returns a TLS that reads the member certificate (PEM, its chain may follow),
// its private key and the CA bundle from files, and reads them again at a handshake when one
// of them changed (modification time or size), so that rotated certificates are used without
// a restart. A rotation that leaves the files unreadable or mismatched keeps the last good
// set and fails only if there is none. serverName is the name expected in every peer's
// certificate; "" means the host part of the address dialed (an IP or a DNS name, which the
// certificate must then list as a SAN).
func NewTLSFromFiles(certFile, keyFile, caFile, serverName string) (*TLS, error) {
	f := &tlsFiles{certFile: certFile, keyFile: keyFile, caFile: caFile}
	if _, _, err := f.current(); err != nil {
		return nil, err
	}
	return &TLS{serverName: serverName, files: f}, nil
}

// NewTLSFromConfig returns a TLS built on c, which must hold the member's certificate
// (Certificates or GetCertificate, and GetClientCertificate or Certificates for dialing) and
// the CA pools (RootCAs to verify servers, ClientCAs to verify clients). The transport raises
// MinVersion to TLS 1.3 and always requires and verifies client certificates.
func NewTLSFromConfig(c *tls.Config, serverName string) (*TLS, error) {
	if c == nil {
		return nil, errors.New("transport: TLS config is nil")
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil {
		return nil, errors.New("transport: TLS config has no certificate")
	}
	if c.RootCAs == nil || c.ClientCAs == nil {
		return nil, errors.New("transport: TLS config needs RootCAs and ClientCAs (the cluster's CA)")
	}
	return &TLS{base: c.Clone(), serverName: serverName}, nil
}

// serverConfig returns the configuration of a server handshake.
func (t *TLS) serverConfig() (*tls.Config, error) {
	var c *tls.Config
	if t.files != nil {
		cert, pool, err := t.files.current()
		if err != nil {
			return nil, err
		}
		c = &tls.Config{Certificates: []tls.Certificate{*cert}, ClientCAs: pool}
	} else {
		c = t.base.Clone()
	}
	c.MinVersion = tls.VersionTLS13
	c.ClientAuth = tls.RequireAndVerifyClientCert
	return c, nil
}

// clientConfig returns the configuration of a handshake dialing addr.
func (t *TLS) clientConfig(addr string) (*tls.Config, error) {
	var c *tls.Config
	if t.files != nil {
		cert, pool, err := t.files.current()
		if err != nil {
			return nil, err
		}
		c = &tls.Config{Certificates: []tls.Certificate{*cert}, RootCAs: pool}
	} else {
		c = t.base.Clone()
	}
	c.MinVersion = tls.VersionTLS13
	c.InsecureSkipVerify = false
	c.ServerName = t.serverName
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	return c, nil
}

// tlsAccepted is the byte a server sends once its handshake succeeded. In TLS 1.3 the client's
// handshake completes before the server has verified the client's certificate, so without it a
// dialer whose certificate the server refused would learn it only at its first read, as a
// broken connection; with it, the dial itself fails with ErrTLSHandshake and the server's
// reason ("unknown certificate authority", ...).
const tlsAccepted = 'T'

// server runs the server side of a handshake on nc, bounded by timeout.
func (t *TLS) server(nc net.Conn, timeout time.Duration) (net.Conn, error) {
	c, err := t.serverConfig()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(nc, c)
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLSHandshake, err)
	}
	if _, err := tc.Write([]byte{tlsAccepted}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLSHandshake, err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

// client runs the client side of a handshake with addr on nc, bounded by timeout, and waits
// for the server to accept this member's certificate.
func (t *TLS) client(nc net.Conn, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.clientConfig(addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(nc, c)
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLSHandshake, err)
	}
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		return nil, fmt.Errorf("%w: the server refused this member's certificate: %w", ErrTLSHandshake, err)
	}
	if b[0] != tlsAccepted {
		return nil, fmt.Errorf("%w: unexpected byte %#x after the handshake", ErrTLSHandshake, b[0])
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

// current returns the certificate and CA pool, reloading the files when one changed.
func (f *tlsFiles) current() (*tls.Certificate, *x509.CertPool, error) {
	var now [3]fileStamp
	for i, name := range []string{f.certFile, f.keyFile, f.caFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return f.fallback(fmt.Errorf("transport: TLS: %w", err))
		}
		now[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cert != nil && now == f.stamp {
		return f.cert, f.pool, nil
	}
	cert, pool, err := LoadTLSFiles(f.certFile, f.keyFile, f.caFile)
	if err != nil {
		if f.cert != nil {
			// A rotation caught half-written, or a broken one: keep serving with the last
			// good set and try again at the next handshake.
			return f.cert, f.pool, nil
		}
		return nil, nil, err
	}
	f.cert, f.pool, f.stamp = cert, pool, now
	return cert, pool, nil
}

func (f *tlsFiles) fallback(err error) (*tls.Certificate, *x509.CertPool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cert != nil {
		return f.cert, f.pool, nil
	}
	return nil, nil, err
}

// LoadTLSFiles reads and checks a certificate, its key and a CA bundle (PEM files): the key
// must match the certificate, the bundle must hold at least one certificate, and the
// certificate must chain to the bundle.
func LoadTLSFiles(certFile, keyFile, caFile string) (*tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: TLS certificate %s / key %s: %w", certFile, keyFile, err)
	}
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, nil, fmt.Errorf("transport: TLS CA %s holds no PEM certificate", caFile)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("transport: TLS certificate %s: %w", certFile, err)
		}
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	// A member's certificate serves both ends of its connections.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		opts := x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}
		if _, err := leaf.Verify(opts); err != nil {
			return nil, nil, fmt.Errorf("transport: TLS certificate %s does not chain to CA %s for client and server use: %w", certFile, caFile, err)
		}
	}
	return &cert, pool, nil
}
