package gridmap

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/control"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/memberhook"
	"github.com/gridmap/gridmap/internal/replicadisk"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
	"github.com/gridmap/gridmap/queue"
	"github.com/gridmap/gridmap/topic"
)

// Member is one gridmap cluster member running inside the calling process. It owns a share of
// every map's partitions, backs up others', and serves the other members. Create it with Start
// and stop it with Close.
type Member struct {
	cfg    Config
	id     partition.MemberID
	addr   string // advertised transport address
	log    *slog.Logger
	server *transport.Server
	client *transport.Client
	node   *control.Node
	engine *engine.Service   // the member's map engine: the member alone closes it
	disk   *replicadisk.Disk // the data folder (Config.DataDir), closed after the engine; nil without
	maps   *dmap.Service     // the engine's user-facing view (Maps)
	queues *queue.Service    // the engine's queues (Queues)
	topics *topic.Service    // the engine's topics (Topics)
	obs    observability     // metrics, throughput history and console (console.go)

	serveDone chan struct{}
	closed    chan struct{} // closed when the member stops
	closeOnce sync.Once
	closeErr  error
}

// Start creates a member, joins (or, with no seeds, founds) the cluster and returns once the
// member is part of it. The member gets a fresh identity at every start, so a restarted process
// joins as a new member. ctx bounds the start only. Every configuration error, whichever part
// of the member finds it, wraps ErrInvalidConfig; Start checks cfg with Config.Validate before
// it starts anything.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	return start(ctx, cfg, nil)
}

// start is Start, on the in-memory networks nets instead of sockets when nets is not nil
// (gridmaptest, through memberhook).
func start(ctx context.Context, cfg Config, nets *memberhook.Networks) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	id, err := newMemberID()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("member", cmp.Or(cfg.Name, string(id)))

	var ln net.Listener
	if nets != nil {
		ln, err = nets.Transport.Listen(cfg.BindAddr)
	} else {
		ln, err = net.Listen("tcp", cfg.BindAddr)
	}
	if err != nil {
		return nil, fmt.Errorf("gridmap: listen on %s: %w", cfg.BindAddr, err)
	}
	advertise := cfg.AdvertiseAddr
	if advertise == "" {
		advertise = ln.Addr().String()
		if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("%w: BindAddr %s is a wildcard address: set AdvertiseAddr", ErrInvalidConfig, cfg.BindAddr)
		}
	}
	tcfg := cfg.transportConfig(log.With("component", "transport"))
	tcfg.Stats = new(transport.Stats) // the member's traffic, for metrics (server and client)
	if err := cfg.Security.applyTransport(&tcfg); err != nil {
		ln.Close()
		return nil, configError(err)
	}
	deps := control.Deps{}
	if nets != nil {
		tcfg.Dial = nets.Transport.DialFrom(advertise)
		deps.Gossip = nets.Gossip
	}
	server, err := transport.NewServer(tcfg)
	if err != nil {
		ln.Close()
		return nil, configError(err)
	}
	client, err := transport.NewClient(tcfg)
	if err != nil {
		ln.Close()
		return nil, configError(err)
	}
	m := &Member{cfg: cfg, id: id, addr: advertise, log: log, server: server, client: client,
		serveDone: make(chan struct{}), closed: make(chan struct{})}
	m.obs.traffic = tcfg.Stats
	go func() {
		defer close(m.serveDone)
		if err := server.Serve(ln); err != nil && !errors.Is(err, transport.ErrClosed) {
			log.Error("transport server stopped", "err", err)
		}
	}()

	ccfg := cfg.controlConfig(id, advertise, log.With("component", "control"))
	if cfg.DataDir != "" {
		if m.disk, err = replicadisk.Open(cfg.DataDir); err != nil {
			m.stopTransport()
			return nil, fmt.Errorf("gridmap: data folder: %w", err)
		}
	}
	// Open the control plane, install the map service's handlers, and only then wait to be part
	// of the cluster: the coordinator may send this member copies as soon as it knows it.
	deps.Server, deps.Client = server, client
	m.node, err = control.Open(ccfg, deps)
	if err != nil {
		m.stopTransport()
		m.closeDisk()
		return nil, configError(err)
	}
	ecfg := cfg.engineConfig(log.With("component", "dmap"))
	ecfg.Disk = m.disk
	m.engine, err = engine.NewService(ecfg, m.node, client, server)
	if err != nil {
		m.node.Close()
		m.stopTransport()
		m.closeDisk()
		return nil, configError(err)
	}
	m.maps = dmap.WrapEngine(m.engine)
	if m.queues, err = queue.WrapEngine(m.engine, cfg.Queues); err != nil {
		m.engine.Close()
		m.node.Close()
		m.stopTransport()
		m.closeDisk()
		return nil, configError(err)
	}
	m.topics = topic.WrapEngine(m.engine)
	m.startMessaging()
	if err := m.startObservability(); err != nil {
		m.stop()
		return nil, configError(err)
	}
	if err := m.node.WaitReady(ctx); err != nil {
		m.stop()
		return nil, joinError(err)
	}
	log.Info("member started", "addr", advertise, "gossip", m.node.GossipAddr())
	return m, nil
}

// ID returns the member's identity, fresh at every start. Every member identity in the API
// (MemberInfo.ID, Partition.Owner, dmap.EntryEvent.Member, dmap.PartitionEvent.Owner) is a
// partition.MemberID, so they compare with == as they are; string(id) gives the text.
func (m *Member) ID() partition.MemberID { return m.id }

// GossipAddr returns the address other members can use as a seed to join this one.
func (m *Member) GossipAddr() string { return m.node.GossipAddr() }

// Maps returns the member's map service, for dmap.New, transactions, processor and predicate
// registration and partition listeners. GetMap is the shorter way to open a map. The service
// lives as long as the member: Close stops it.
func (m *Member) Maps() *dmap.Service { return m.maps }

// Queues returns the member's queue service, for queue.New. It lives as long as the member.
func (m *Member) Queues() *queue.Service { return m.queues }

// Topics returns the member's topic service, for topic.New (publish/subscribe). It lives as long
// as the member.
func (m *Member) Topics() *topic.Service { return m.topics }

// MemoryUsed returns the bytes Config.MemoryBudget counts on this member now, and the budget
// (0 when there is none, and then used is 0 too): see Config.MemoryBudget for what is counted.
func (m *Member) MemoryUsed() (used, budget int64) {
	return m.engine.MemoryUsed(), m.cfg.MemoryBudget
}

// Close leaves the cluster gracefully: the coordinator moves this member's partitions to the
// others (their data and write-behind queues copied first), then the member stops. The last
// member of a cluster has nobody to hand off to: it stores its dirty entries first. If ctx ends
// before that completes, the member stops anyway and the others recover its partitions from
// backups, as after a crash. Close is idempotent.
func (m *Member) Close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		if m.node.Alone() {
			// Nobody to hand the write-behind queues to: store them while this member still
			// holds its lease (Leave stops the control plane).
			if err := m.engine.FlushLocal(ctx); err != nil {
				m.log.Warn("flush before closing incomplete", "err", err)
				m.closeErr = err
			}
		}
		m.engine.BeginLeave()
		if err := m.node.Leave(ctx); err != nil {
			m.log.Warn("graceful leave incomplete", "err", err)
			m.closeErr = err
		}
		m.stop()
	})
	return m.closeErr
}

// kill stops the member at once, without a hand-off, as a crash would (in-process tests).
func (m *Member) kill() {
	m.closeOnce.Do(m.stop)
}

func (m *Member) stop() {
	close(m.closed)
	m.stopObservability()
	m.engine.Close()
	m.node.Close()
	m.stopTransport()
	m.closeDisk()
}

// closeDisk closes the data folder, if any, once nothing writes to it.
func (m *Member) closeDisk() {
	if m.disk == nil {
		return
	}
	if err := m.disk.Close(); err != nil {
		m.log.Error("closing the data folder", "err", err)
	}
}

func (m *Member) stopTransport() {
	m.server.Close()
	m.client.Close()
	<-m.serveDone
}

// GetMap returns the map called name on member m, with keys of type K and values of type V.
// Every member that opens the same name sees the same entries; all must use compatible types or
// codecs. Maps are cheap views: calling GetMap again is fine.
func GetMap[K comparable, V any](m *Member, name string, opts ...dmap.Option[K, V]) (*dmap.Map[K, V], error) {
	return dmap.New[K, V](m.maps, name, opts...)
}

func newMemberID() (partition.MemberID, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("gridmap: member id: %w", err)
	}
	return partition.MemberID(hex.EncodeToString(b[:])), nil
}

// engineMaps converts the maps' configurations to the engine's form.
func engineMaps(maps map[string]dmap.MapConfig) map[string]engine.MapConfig {
	if maps == nil {
		return nil
	}
	out := make(map[string]engine.MapConfig, len(maps))
	for name, c := range maps {
		out[name] = engine.MapConfig(c)
	}
	return out
}

// engineStructureMaps converts the queues' stores to the engine's structure maps.
func engineStructureMaps(queues map[string]queue.Config) map[string]engine.MapConfig {
	out := make(map[string]engine.MapConfig)
	for name, c := range queues {
		if c.Store != nil {
			out[engine.StructureMapName("queue", name)] = engine.MapConfig{Store: c.Store, Persistence: c.Persistence}
		}
	}
	return out
}
