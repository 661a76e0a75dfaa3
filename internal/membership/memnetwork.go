package membership

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/gridmap/gridmap/internal/memnet"
)

// packetQueue bounds the packets waiting for one member's memberlist to read them; beyond it
// packets are dropped, as a full UDP receive buffer drops datagrams.
const packetQueue = 1024

// MemNetwork is an in-process gossip network: each List given it in Config.Network gossips
// through memory instead of UDP and TCP sockets. Packets are delivered like UDP datagrams
// (dropped when the receiver is gone or its queue is full), streams through socket pairs (see
// package memnet). A List that shuts down leaves the network, so the others' probes of it fail
// as they would for a stopped process. Safe for concurrent use.
type MemNetwork struct {
	// Links partitions gossip addresses (Cut): packets between them are dropped, streams
	// refused, open streams closed.
	memnet.Links

	mu       sync.RWMutex
	nodes    map[string]*memTransport // by host:port
	lastPort int
}

// NewMemNetwork returns an empty gossip network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{nodes: make(map[string]*memTransport)}
}

// bind returns the transport of a member gossiping at host:port (an IP); port 0 assigns one
// unused in this network.
func (n *MemNetwork) bind(host string, port int) (*memTransport, error) {
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("%w: BindAddr host %q is not an IP address (in-memory gossip)", ErrConfig, host)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for port == 0 {
		n.lastPort = n.lastPort%65535 + 1
		if _, taken := n.nodes[net.JoinHostPort(ip.String(), strconv.Itoa(n.lastPort))]; !taken {
			port = n.lastPort
		}
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	if _, taken := n.nodes[addr]; taken {
		return nil, fmt.Errorf("membership: gossip address %s already in use", addr)
	}
	t := &memTransport{net: n, ip: ip, port: port, addr: addr, packets: make(chan *memberlist.Packet, packetQueue), done: make(chan struct{})}
	t.streams = memnet.NewListener(&net.TCPAddr{IP: ip, Port: port}, nil)
	n.nodes[addr] = t
	return t, nil
}

func (n *MemNetwork) lookup(addr string) *memTransport {
	if tcp, err := net.ResolveTCPAddr("tcp", addr); err == nil {
		addr = tcp.String()
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.nodes[addr]
}

// memTransport is one member's memberlist.Transport on a MemNetwork.
type memTransport struct {
	net     *MemNetwork
	ip      net.IP
	port    int
	addr    string
	packets chan *memberlist.Packet
	streams *memnet.Listener

	acceptOnce sync.Once
	streamCh   chan net.Conn
	done       chan struct{} // closed by Shutdown
	closeOnce  sync.Once
}

var _ memberlist.Transport = (*memTransport)(nil)

// FinalAdvertiseAddr returns the advertised address: the configured one if any, else the bound.
func (t *memTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		return t.ip, t.port, nil
	}
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return nil, 0, fmt.Errorf("membership: advertise address %q is not an IP address", ip)
	}
	return parsed, port, nil
}

// WriteTo delivers a copy of b to the member at addr, or drops it (as UDP would) when there is
// no such member or its queue is full.
func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	dest := t.net.lookup(addr)
	if dest == nil || t.net.Blocked(t.addr, dest.addr) {
		return now, nil
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: &net.UDPAddr{IP: t.ip, Port: t.port}, Timestamp: now}
	select {
	case dest.packets <- p:
	default:
	}
	return now, nil
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout connects a stream to the member at addr.
func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	dest := t.net.lookup(addr)
	if dest == nil {
		return nil, fmt.Errorf("membership: dial %s: connection refused", addr)
	}
	if t.net.Blocked(t.addr, dest.addr) {
		return nil, fmt.Errorf("membership: dial %s: network partitioned", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := dest.streams.Dial(ctx)
	if err != nil {
		return nil, err
	}
	if tc := t.net.Track(t.addr, dest.addr, c); tc != nil {
		return tc, nil
	}
	return nil, fmt.Errorf("membership: dial %s: network partitioned", addr)
}

// StreamCh returns the streams dialed to this member. The first call starts the goroutine that
// hands them over; it ends at Shutdown.
func (t *memTransport) StreamCh() <-chan net.Conn {
	t.acceptOnce.Do(func() {
		t.streamCh = make(chan net.Conn)
		go func() {
			for {
				c, err := t.streams.Accept()
				if err != nil {
					return
				}
				select {
				case t.streamCh <- c:
				case <-t.done:
					c.Close()
					return
				}
			}
		}()
	})
	return t.streamCh
}

// Shutdown leaves the network: packets to this member are dropped and dials refused from now on.
func (t *memTransport) Shutdown() error {
	t.net.mu.Lock()
	if t.net.nodes[t.addr] == t {
		delete(t.net.nodes, t.addr)
	}
	t.net.mu.Unlock()
	t.closeOnce.Do(func() { close(t.done) })
	return t.streams.Close()
}
