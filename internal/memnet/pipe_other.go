//go:build !unix

package memnet

import (
	"fmt"
	"net"
)

// Pipe returns the two ends of a loopback TCP connection: platforms without socketpair get
// sockets' buffering this way, at the cost of an ephemeral port per connection.
func Pipe() (net.Conn, net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("memnet: pipe: %w", err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-ch
		return nil, nil, fmt.Errorf("memnet: pipe: %w", err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("memnet: pipe: %w", r.err)
	}
	return a, r.c, nil
}
