//go:build !linux

package transport

import (
	"net"
	"time"
)

// setUserTimeout is Linux-only (TCP_USER_TIMEOUT); elsewhere keep-alives alone detect dead peers.
func setUserTimeout(net.Conn, time.Duration) {}
