// Command gridmap-certs makes a development CA and member certificates for gridmap's mutual
// TLS (Config.Security.TLS): ECDSA P-256, each certificate valid for both server and client
// authentication, with the given hosts and IP addresses as subject alternative names.
//
//	gridmap-certs -dir ./certs -members 3 -hosts 127.0.0.1,localhost,node1.example
//
// writes ca.pem, ca-key.pem and member-<i>.pem, member-<i>-key.pem for i in 1..3. Every member
// uses ca.pem as CAFile; keep ca-key.pem away from the members (it signs new ones). For
// production, use your own PKI.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gridmap/gridmap/internal/certgen"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gridmap-certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "certs", "folder to write the certificates into (created if needed)")
	members := fs.Int("members", 3, "number of member certificates")
	hosts := fs.String("hosts", "127.0.0.1,localhost", "comma-separated DNS names and IP addresses every certificate lists (the addresses members dial each other by)")
	valid := fs.Duration("valid", 365*24*time.Hour, "validity of the CA and the certificates")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 || *members < 1 || *valid <= 0 {
		fmt.Fprintln(stderr, "gridmap-certs: need -hosts, -members >= 1 and a positive -valid")
		return 2
	}
	f, err := certgen.WriteDir(*dir, *members, hs, *valid)
	if err != nil {
		fmt.Fprintln(stderr, "gridmap-certs:", err)
		return 1
	}
	fmt.Fprintf(stdout, "CA:      %s (key %s: keep it off the members)\n", f.CA, f.CAKey)
	for i := range f.Certs {
		fmt.Fprintf(stdout, "member %d: CertFile %s KeyFile %s\n", i+1, f.Certs[i], f.Keys[i])
	}
	return 0
}
