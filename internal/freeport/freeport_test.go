package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrIsFreeAndBelowEphemeralRange(t *testing.T) {
	for range 20 {
		addr, err := Addr("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if port < lowest || (ephemeralStart() > 0 && port >= ephemeralStart()) {
			t.Fatalf("port %d outside [%d, %d)", port, lowest, ephemeralStart())
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s not free for TCP: %v", addr, err)
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("%s not free for UDP: %v", addr, err)
		}
		_ = ln.Close()
		_ = pc.Close()
	}
}
