// Package certgen makes development certificates for gridmap's mutual TLS: a CA and member
// certificates (ECDSA P-256) that serve both ends of a member's connections. It backs the
// gridmap-certs command, the tests and the load tool; production clusters should use their
// own PKI.
package certgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that signs member certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertPEM is the CA certificate, PEM encoded (the members' CA file).
	CertPEM []byte
}

// Pair is a certificate and its private key, PEM encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// NewCA makes a self-signed CA valid from now for validFor.
func NewCA(name string, validFor time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"gridmap development"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certgen: CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Member makes a certificate for a member named name, valid from now for validFor, for both
// server and client authentication, with hosts (DNS names or IP addresses) as its subject
// alternative names: list every name and address other members dial it by.
func (ca *CA) Member(name string, hosts []string, validFor time.Duration) (Pair, error) {
	if len(hosts) == 0 {
		return Pair{}, errors.New("certgen: a member certificate needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	serial, err := serialNumber()
	if err != nil {
		return Pair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"gridmap development"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Pair{}, fmt.Errorf("certgen: member %s: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Files are the paths WriteDir wrote.
type Files struct {
	CA      string   // ca.pem
	Certs   []string // member-<i>.pem
	Keys    []string // member-<i>-key.pem
	CAKey   string   // ca-key.pem (keep it to sign more members; members do not need it)
	Members int
}

// WriteDir makes a CA and n member certificates with hosts as SANs into dir (created if
// needed): ca.pem, ca-key.pem, member-<i>.pem and member-<i>-key.pem for i in 1..n. Keys are
// written with mode 0600.
func WriteDir(dir string, n int, hosts []string, validFor time.Duration) (Files, error) {
	if n < 1 {
		return Files{}, fmt.Errorf("certgen: need at least one member, got %d", n)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, err
	}
	ca, err := NewCA("gridmap development CA", validFor)
	if err != nil {
		return Files{}, err
	}
	caKey, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return Files{}, err
	}
	f := Files{CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"), Members: n}
	if err := os.WriteFile(f.CA, ca.CertPEM, 0o644); err != nil {
		return Files{}, err
	}
	if err := os.WriteFile(f.CAKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKey}), 0o600); err != nil {
		return Files{}, err
	}
	for i := 1; i <= n; i++ {
		p, err := ca.Member(fmt.Sprintf("member-%d", i), hosts, validFor)
		if err != nil {
			return Files{}, err
		}
		cert, key := filepath.Join(dir, fmt.Sprintf("member-%d.pem", i)), filepath.Join(dir, fmt.Sprintf("member-%d-key.pem", i))
		if err := os.WriteFile(cert, p.CertPEM, 0o644); err != nil {
			return Files{}, err
		}
		if err := os.WriteFile(key, p.KeyPEM, 0o600); err != nil {
			return Files{}, err
		}
		f.Certs, f.Keys = append(f.Certs, cert), append(f.Keys, key)
	}
	return f, nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
