//go:build unix

package memnet

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// Pipe returns the two ends of a Unix stream socketpair, as net.Conns.
func Pipe() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("memnet: socketpair: %w", err)
	}
	a, err := fileConn(fds[0], "memnet-a")
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	b, err := fileConn(fds[1], "memnet-b")
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// fileConn wraps fd in a net.Conn, which dups it; fd itself is closed.
func fileConn(fd int, name string) (net.Conn, error) {
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("memnet: socketpair: %w", err)
	}
	return c, nil
}
