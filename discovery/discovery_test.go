package discovery

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func TestStatic(t *testing.T) {
	s := Static{"10.0.0.1:7946", "10.0.0.2:7946"}
	got, err := s.Seeds(context.Background())
	if err != nil || !slices.Equal(got, []string(s)) {
		t.Fatalf("Seeds = %v, %v", got, err)
	}
	got[0] = "changed"
	if s[0] != "10.0.0.1:7946" {
		t.Fatal("Seeds returned the caller's slice, not a copy")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Seeds(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Seeds with cancelled ctx: %v", err)
	}
}

func TestFunc(t *testing.T) {
	var d Discovery = Func(func(context.Context) ([]string, error) { return []string{"a:1"}, nil })
	got, err := d.Seeds(context.Background())
	if err != nil || !slices.Equal(got, []string{"a:1"}) {
		t.Fatalf("Seeds = %v, %v", got, err)
	}
}

// fakeDNS answers A and AAAA queries for the names in records; other names
// get NXDOMAIN. It serves one UDP socket until the test ends.
func fakeDNS(t *testing.T, records map[string][]net.IP) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var req dnsmessage.Message
			if err := req.Unpack(buf[:n]); err != nil || len(req.Questions) != 1 {
				continue
			}
			q := req.Questions[0]
			resp := dnsmessage.Message{
				Header:    dnsmessage.Header{ID: req.ID, Response: true, Authoritative: true, RecursionAvailable: true},
				Questions: req.Questions,
			}
			ips, ok := records[strings.ToLower(q.Name.String())]
			if !ok {
				resp.RCode = dnsmessage.RCodeNameError
			}
			for _, ip := range ips {
				h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
				if ip4 := ip.To4(); ip4 != nil && q.Type == dnsmessage.TypeA {
					h.Type = dnsmessage.TypeA
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: [4]byte(ip4)}})
				} else if ip.To4() == nil && q.Type == dnsmessage.TypeAAAA {
					h.Type = dnsmessage.TypeAAAA
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: [16]byte(ip.To16())}})
				}
			}
			out, err := resp.Pack()
			if err != nil {
				continue
			}
			pc.WriteTo(out, from)
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

func TestDNS(t *testing.T) {
	r := fakeDNS(t, map[string][]net.IP{
		"members.gridmap.test.": {net.ParseIP("10.1.0.1"), net.ParseIP("10.1.0.2"), net.ParseIP("fd00::3")},
	})
	ctx := context.Background()

	got, err := DNS{Name: "members.gridmap.test.", Port: 7946, Resolver: r}.Seeds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{"10.1.0.1:7946", "10.1.0.2:7946", "[fd00::3]:7946"}
	if !slices.Equal(got, want) {
		t.Fatalf("Seeds = %v, want %v", got, want)
	}

	got, err = DNS{Name: "absent.gridmap.test.", Port: 7946, Resolver: r}.Seeds(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("absent name: Seeds = %v, %v; want no seeds, no error", got, err)
	}
}

func TestDNSBadConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := (DNS{Port: 1}).Seeds(ctx); !errors.Is(err, ErrNoName) {
		t.Fatalf("empty name: %v", err)
	}
	for _, p := range []int{0, -1, 65536} {
		if _, err := (DNS{Name: "x", Port: p}).Seeds(ctx); !errors.Is(err, ErrBadPort) {
			t.Fatalf("port %d: %v", p, err)
		}
	}
}

func TestDNSLookupError(t *testing.T) {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("network unreachable")
		},
	}
	_, err := DNS{Name: "members.gridmap.test.", Port: 1, Resolver: r}.Seeds(context.Background())
	if !errors.Is(err, ErrLookup) {
		t.Fatalf("err = %v, want ErrLookup", err)
	}
}
