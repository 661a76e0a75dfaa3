package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/gridmap/gridmap/internal/transport"
)

func TestWritesVerifiableCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if code := run([]string{"-dir", dir, "-members", "2", "-hosts", "10.1.2.3, node.example"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, i := range []string{"1", "2"} {
		cert, key, ca := filepath.Join(dir, "member-"+i+".pem"), filepath.Join(dir, "member-"+i+"-key.pem"), filepath.Join(dir, "ca.pem")
		if _, _, err := transport.LoadTLSFiles(cert, key, ca); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(cert)
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("10.1.2.3")) || len(c.DNSNames) != 1 || c.DNSNames[0] != "node.example" {
			t.Fatalf("SANs %v %v", c.IPAddresses, c.DNSNames)
		}
		if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
			t.Fatalf("key mode %v", fi.Mode())
		}
	}
	if code := run([]string{"-members", "0"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("-members 0: exit %d", code)
	}
}
