package gridmap

import (
	"cmp"
	"context"
	"fmt"
	"runtime/metrics"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/console"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/msgpackcheck"
	"github.com/gridmap/gridmap/internal/transport"
)

// ConsoleConfig configures a member's management console: Prometheus metrics, a JSON API and a
// web page showing the whole cluster. Off by default.
type ConsoleConfig struct {
	// Addr is the HTTP host:port to serve the console on: the page at /, the JSON API under
	// /api/ and Prometheus metrics at /metrics. Port 0 picks a free port
	// (Member.ConsoleAddr tells which). "" (the default): no console. Any member's console shows
	// the whole cluster: it asks the other members over the member connections, so the others
	// need no console of their own.
	Addr string
	// Token is the bearer token that write actions (publishing to a topic) require, compared in
	// constant time; without it a request is read-only and writes get 401. "" (the default):
	// the console is read-only and writes get 403. Serve the console over a trusted network or
	// behind TLS termination: the token travels in clear over plain HTTP.
	Token string
}

// msgConsole asks a member for its console figures (console.Member, msgpack).
const msgConsole transport.MsgType = 60

// consoleCallTimeout bounds the wait for one member's figures; a member that does not answer in
// time is shown with an error.
const consoleCallTimeout = 2 * time.Second

// sampleInterval is how often a member samples its throughput for the console's charts.
const sampleInterval = time.Second

// observability is a member's metrics collector, throughput history and console.
type observability struct {
	history   console.History
	collector *collector
	console   *console.Server // nil: no console
	dests     destinationsBox
	publisher console.Publisher // set by setMessaging (guarded by dests.mu)
	traffic   *transport.Stats  // the member's connections' traffic
	wg        sync.WaitGroup
}

// destinationsBox holds the topic and queue figures hook (nil: none yet).
type destinationsBox struct {
	mu sync.RWMutex
	d  console.Destinations
}

func (b *destinationsBox) get() console.Destinations {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.d
}

func (b *destinationsBox) set(d console.Destinations) {
	b.mu.Lock()
	b.d = d
	b.mu.Unlock()
}

// startObservability registers the console's member handler and the metrics collector, starts
// the throughput sampler and, when configured, the console. The member's engine and control
// plane exist.
func (m *Member) startObservability() error {
	o := &m.obs
	m.server.Handle(msgConsole, transport.HandlerFunc(m.handleConsole))
	o.collector = newCollector(m)
	if m.cfg.Metrics != nil {
		if err := m.cfg.Metrics.Register(o.collector); err != nil {
			return fmt.Errorf("gridmap: register metrics: %w", err)
		}
	}
	o.wg.Add(1)
	go m.sampleThroughput()
	if m.cfg.Console.Addr == "" {
		return nil
	}
	gatherer, ok := m.cfg.Metrics.(prometheus.Gatherer)
	if !ok {
		reg := prometheus.NewRegistry()
		reg.MustRegister(o.collector)
		gatherer = reg
	}
	srv, err := console.New(console.Config{
		Addr:     m.cfg.Console.Addr,
		Token:    m.cfg.Console.Token,
		Source:   consoleSource{m},
		Gatherer: gatherer,
		Logger:   m.log.With("component", "console"),
	})
	if err != nil {
		return fmt.Errorf("gridmap: console: %w", err)
	}
	o.dests.mu.Lock()
	o.console = srv
	p := o.publisher
	o.dests.mu.Unlock()
	if p != nil {
		srv.SetPublisher(p)
	}
	m.log.Info("console serving", "addr", "http://"+srv.Addr()+"/")
	return nil
}

// stopObservability stops the console and the sampler (m.closed is closed).
func (m *Member) stopObservability() {
	o := &m.obs
	if o.console != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = o.console.Close(ctx)
		cancel()
	}
	if m.cfg.Metrics != nil && o.collector != nil {
		m.cfg.Metrics.Unregister(o.collector)
	}
	o.wg.Wait()
}

// ConsoleAddr returns the address the member's console listens on, "" when it has none.
func (m *Member) ConsoleAddr() string {
	if m.obs.console == nil {
		return ""
	}
	return m.obs.console.Addr()
}

// sampleThroughput records the member's operation count once a second for the charts.
func (m *Member) sampleThroughput() {
	defer m.obs.wg.Done()
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	m.obs.history.Add(time.Now(), m.engine.TotalOps())
	for {
		select {
		case <-m.closed:
			return
		case now := <-t.C:
			m.obs.history.Add(now, m.engine.TotalOps())
		}
	}
}

// handleConsole answers another member's console with this member's figures.
func (m *Member) handleConsole(ctx context.Context, _ transport.Message) (transport.Message, error) {
	snap := m.localFigures()
	h, err := msgpack.Marshal(&snap)
	if err != nil {
		return transport.Message{}, err
	}
	return transport.Message{Type: msgConsole, Header: h}, nil
}

// consoleSource gives the console the whole cluster, asking the other members.
type consoleSource struct{ m *Member }

func (s consoleSource) Cluster(ctx context.Context) console.Cluster { return s.m.clusterFigures(ctx) }

// clusterFigures gathers every member's figures: its own directly, the others' over the member
// transport, concurrently, each bounded by consoleCallTimeout and ctx.
func (m *Member) clusterFigures(ctx context.Context) console.Cluster {
	t := m.node.Table()
	c := console.Cluster{
		Self: string(m.id), PartitionCount: t.Count(), Epoch: t.Epoch,
		Owners: map[string]int{}, Backups: map[string]int{}, Lost: []int{},
		Safe: m.Cluster().safe(t), Time: time.Now().UnixMilli(),
	}
	for i, a := range t.Partitions {
		if a.Lost {
			c.Lost = append(c.Lost, i)
		}
		c.Migrations += len(a.Pending)
		for j, r := range a.Replicas {
			if j == 0 {
				c.Owners[string(r)]++
			} else {
				c.Backups[string(r)]++
			}
		}
	}
	infos := m.node.Members()
	c.Members = make([]console.Member, len(infos))
	var wg sync.WaitGroup
	for i, mi := range infos {
		base := console.Member{ID: string(mi.ID), Addr: mi.TransportAddr, GossipAddr: mi.GossipAddr,
			Role: role(mi.Voter, mi.Leader), Alive: mi.Alive, Leaving: mi.Leaving}
		if mi.Leader {
			c.Leader = string(mi.ID)
		}
		switch {
		case mi.ID == m.id:
			f := m.localFigures()
			f.Role, f.Alive, f.Leaving = base.Role, base.Alive, base.Leaving
			c.Members[i] = f
		case !mi.Alive:
			c.Members[i] = base
		default:
			wg.Go(func() {
				f, err := m.remoteFigures(ctx, mi.TransportAddr)
				if err != nil {
					base.Error = err.Error()
					c.Members[i] = base
					return
				}
				f.ID, f.Addr, f.GossipAddr = base.ID, base.Addr, base.GossipAddr
				f.Role, f.Alive, f.Leaving, f.Local = base.Role, base.Alive, base.Leaving, false
				c.Members[i] = f
			})
		}
	}
	wg.Wait()
	c.Summarize()
	return c
}

func role(voter, leader bool) string {
	switch {
	case leader:
		return "leader"
	case voter:
		return "voter"
	}
	return "member"
}

// remoteFigures asks the member at addr for its figures.
func (m *Member) remoteFigures(ctx context.Context, addr string) (console.Member, error) {
	resp, err := m.client.CallTimeout(ctx, addr, transport.Message{Type: msgConsole}, consoleCallTimeout)
	if err != nil {
		return console.Member{}, err
	}
	return decodeFigures(resp.Header)
}

// decodeFigures decodes a member's figures as another member sent them.
func decodeFigures(b []byte) (console.Member, error) {
	var f console.Member
	if err := msgpackcheck.Unmarshal(b, &f); err != nil {
		return console.Member{}, fmt.Errorf("gridmap: malformed console figures: %w", err)
	}
	return f, nil
}

// localFigures are this member's own figures for the console.
func (m *Member) localFigures() console.Member {
	st := m.engine.Stats()
	rs := m.node.RaftStats()
	rates, at := m.obs.history.Rates()
	f := console.Member{
		ID: string(m.id), Name: m.cfg.Name, Addr: m.addr, GossipAddr: m.node.GossipAddr(), Local: true,
		Alive:           true,
		PartitionsOwned: st.PartitionsOwned, PartitionsBackedUp: st.PartitionsBackedUp,
		MigrationsIn: st.MigrationsIn, MigrationsOut: st.MigrationsOut, CopiesDone: st.CopiesDone,
		TableEpoch: st.TableEpoch, HeapBytes: heapBytes(), RaftState: rs.State, RaftTerm: rs.Term,
		Ops: m.engine.TotalOps(), Rates: rates,
	}
	if !at.IsZero() {
		f.RatesAt = at.UnixMilli()
	}
	ops := m.engine.OpStats()
	stored := m.engine.StoredMaps()
	for _, ms := range st.Maps {
		f.EntryBytes += ms.OwnedBytes + ms.BackupBytes
		if engine.IsStructureMapName(ms.Name) {
			continue // a queue's or topic's entries: shown as queues and topics
		}
		mp := console.Map{
			Name: ms.Name, Entries: ms.OwnedEntries, BackupEntries: ms.BackupEntries,
			Bytes: ms.OwnedBytes, BackupBytes: ms.BackupBytes, Ops: map[string]uint64{},
			Listeners: ms.Listeners, ListenerQueued: ms.ListenerQueued, ListenerMissed: ms.ListenerMissed,
		}
		if _, ok := slices.BinarySearch(stored, ms.Name); ok {
			ps := m.engine.PersistenceStats(ms.Name)
			mp.Stored = true
			mp.Dirty, mp.DirtyBytes = ps.DirtyEntries, ps.DirtyBytes
			mp.OldestDirtyMs = ps.OldestDirty.Milliseconds()
			mp.StoreErrors = ps.StoreErrors
			if ps.LastError != nil {
				mp.LastError = ps.LastError.Error()
			}
		}
		for c, os := range ops[ms.Name] {
			if os.Ops > 0 {
				mp.Ops[engine.OpClassNames[c]] = os.Ops
			}
		}
		f.Maps = append(f.Maps, mp)
	}
	if d := m.obs.dests.get(); d != nil {
		f.Topics, f.Queues = d.Topics(), d.Queues()
	}
	return f
}

// heapBytes reads the Go heap in use without stopping the world (runtime.ReadMemStats would).
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// setMessaging wires the topic and queue service into the console: p publishes the console
// form's messages (nil: publishing fails with 503), d reports topic and queue sizes for the
// console and the metrics (nil: none). start calls it through startMessaging (messaging.go).
//
// It may be called before or after startObservability (from start, before Start returns).
func (m *Member) setMessaging(p console.Publisher, d console.Destinations) {
	m.obs.dests.set(d)
	m.obs.dests.mu.Lock()
	m.obs.publisher = p
	srv := m.obs.console
	m.obs.dests.mu.Unlock()
	if srv != nil {
		srv.SetPublisher(p)
	}
}

// metricsMemberLabel is the value of the member label on every metric: the member's Name,
// else its ID.
func (m *Member) metricsMemberLabel() string { return cmp.Or(m.cfg.Name, string(m.id)) }
