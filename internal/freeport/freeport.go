// Package freeport picks loopback ports for members started by tests and by gridmap-bench, which
// must know a member's gossip address before it starts (memberlist binds TCP and UDP on one
// port).
//
// A port the kernel hands out for a listener on port 0 comes from the ephemeral range, the same
// range outgoing connections take their local ports from: between the check and the member's
// own bind, a connection elsewhere on the machine may take it ("address already in use"). So
// ports are drawn at random from below the ephemeral range, where the kernel never assigns one
// by itself.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port drawn; ports below are often taken by well-known services.
const lowest = 10000

// Addr returns host:port on the given loopback host with a port that is free for both TCP and
// UDP now, below the kernel's ephemeral port range.
func Addr(host string) (string, error) {
	top := ephemeralStart()
	if top <= lowest+1000 {
		top = 32768
	}
	var last error
	for range 200 {
		addr := net.JoinHostPort(host, strconv.Itoa(lowest+rand.IntN(top-lowest)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			last = err
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		_ = ln.Close()
		if err != nil {
			last = err
			continue
		}
		_ = pc.Close()
		return addr, nil
	}
	return "", fmt.Errorf("freeport: no free TCP and UDP port on %s: %w", host, last)
}

// ephemeralStart returns the first port of the kernel's ephemeral range (Linux), or 0 when it
// cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return n
}
