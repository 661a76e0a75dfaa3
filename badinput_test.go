package gridmap

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/transport"
)

// Garbage on the cluster port gets an error and loses nothing: the member keeps serving and
// every acknowledged write stays readable.
func TestMalformedInputOnClusterPort(t *testing.T) {
	members := startCluster(t, 2, nil)
	ctx := context.Background()
	mp := getMap[string, string](t, members[0], "safe")
	if err := mp.Put(ctx, "before", "v"); err != nil {
		t.Fatal(err)
	}
	target := members[1].addr
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	request := func(typ transport.MsgType, header, body []byte) []byte {
		return transport.AppendFrame([]byte{'G'}, transport.Frame{Kind: transport.KindRequest, Type: typ, ID: 7, Header: header, Body: body})
	}
	expectError := func(r *bufio.Reader, what string) {
		t.Helper()
		f, err := transport.ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatalf("%s: no error response: %v", what, err)
		}
		if f.Kind != transport.KindError && f.Kind != transport.KindResponse {
			t.Fatalf("%s: frame kind %d", what, f.Kind)
		}
	}

	cases := []struct {
		name  string
		bytes []byte
	}{
		{"unknown protocol byte", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"oversized frame", func() []byte {
			b := []byte{'G', 0, 0, 0, 0}
			binary.BigEndian.PutUint32(b[1:], 1<<31)
			return append(b, make([]byte, 14)...)
		}()},
		{"undecodable operation header", request(10, []byte{0xc1, 0xff}, nil)},
		{"undecodable backup batch", request(11, []byte{0x93, 0x01}, []byte("junk"))},
		{"unknown message type", request(200, nil, nil)},
	}
	for _, tc := range cases {
		c, r := dial()
		if _, err := c.Write(tc.bytes); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.name != "unknown protocol byte" {
			expectError(r, tc.name)
		}
		c.Close()
	}
	// The member still serves, and nothing was lost.
	for i := range 50 {
		if err := mp.Put(ctx, "after", "v"); err != nil {
			t.Fatalf("put %d after garbage: %v", i, err)
		}
	}
	if v, err := getMap[string, string](t, members[1], "safe").Get(ctx, "before"); err != nil || v != "v" {
		t.Fatalf("Get before = %q, %v", v, err)
	}
}

func TestOversizedValueIsRefused(t *testing.T) {
	members := startCluster(t, 2, func(c *Config) { c.MaxFrameSize = 2 << 20 })
	mp := getMap[string, []byte](t, members[0], "big")
	err := mp.Put(context.Background(), "k", make([]byte, 3<<20))
	if !errors.Is(err, dmap.ErrValueTooLarge) {
		t.Fatalf("Put 3 MiB with a 2 MiB frame limit = %v, want dmap.ErrValueTooLarge", err)
	}
	if err := mp.Put(context.Background(), "k", make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
}
