package gridmap

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridmap/gridmap/internal/engine"
)

// collector exports a member's figures to Prometheus. It reads them at scrape time, from the
// counters the member keeps anyway (and the partition table), so that metrics cost nothing on
// the operations' path. Every series carries the label member (Config.Name, else the member's
// ID), so that several members of one process may share a registry.
type collector struct {
	m     *Member
	descs collectorDescs
}

type collectorDescs struct {
	entries, paged, bytes                           *prometheus.Desc
	ops, opErrors, opLatency                        *prometheus.Desc
	dirty, dirtyBytes, lag, storeCalls, storeErrors *prometheus.Desc
	storeRetries, storeRejected                     *prometheus.Desc
	listeners, listenerQueued, listenerMissed       *prometheus.Desc
	listenerDelivered                               *prometheus.Desc
	partitions, migrations, copies, epoch, lost     *prometheus.Desc
	raftLeader, raftTerm, raftVoters, raftLastIndex *prometheus.Desc
	members                                         *prometheus.Desc
	topicPublished, topicReceived, topicSubscribers *prometheus.Desc
	queueSize                                       *prometheus.Desc
	queueGiveBacks, queueGiveBackUnknown            *prometheus.Desc
	queueGiveBackHeld                               *prometheus.Desc
	transportBytes, transportFrames                 *prometheus.Desc
}

func newCollector(m *Member) *collector {
	cl := prometheus.Labels{"member": m.metricsMemberLabel()}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("gridmap_"+name, help, labels, cl)
	}
	return &collector{m: m, descs: collectorDescs{
		entries: d("map_entries", "Entries this member holds, by map and role (owner or backup).", "map", "role"),
		paged: d("map_paged_entries", "Entries among them whose value is paged out to this member's data folder under its memory budget "+
			"(the keys stay in memory), by map and role.", "map", "role"),
		bytes:    d("map_bytes", "Memory of the entries this member holds (keys, values and a fixed overhead per entry), by map and role.", "map", "role"),
		ops:      d("map_operations_total", "Map operations this member's callers ran, by map and operation.", "map", "op"),
		opErrors: d("map_operation_errors_total", "Map operations of this member's callers that failed, by map and operation.", "map", "op"),
		opLatency: d("map_operation_latency_seconds", "Latency of map operations as this member's callers saw them, "+
			"measured on one operation in 16 of each kind (the count is the sampled operations).", "map", "op"),
		dirty:             d("map_dirty_entries", "Entries of the map waiting to be stored (write-behind), on the partitions this member owns.", "map"),
		dirtyBytes:        d("map_dirty_bytes", "Bytes of the entries waiting to be stored.", "map"),
		lag:               d("map_write_behind_lag_seconds", "Age of the oldest entry waiting to be stored.", "map"),
		storeCalls:        d("map_store_calls_total", "Calls this member made to the map's store.", "map"),
		storeErrors:       d("map_store_errors_total", "Failed calls to the map's store (retried).", "map"),
		storeRetries:      d("map_store_retries_total", "Batches handed to the store again after a failure.", "map"),
		storeRejected:     d("map_store_rejected_total", "Entries the store refused for good (kept in memory, not retried).", "map"),
		listeners:         d("map_listeners", "Local entry listeners registered on this member.", "map"),
		listenerQueued:    d("map_listener_queued_events", "Events waiting in the local listeners' queues.", "map"),
		listenerMissed:    d("map_listener_missed_events_total", "Events local listeners missed because their queue was full.", "map"),
		listenerDelivered: d("map_listener_delivered_events_total", "Events delivered to local listeners.", "map"),
		partitions:        d("partitions", "Partitions the table assigns this member, by role (owner or backup).", "role"),
		migrations:        d("migrations_in_progress", "Partition copies in flight involving this member, by direction (in: it receives; out: it owns and sends).", "direction"),
		copies:            d("partition_copies_total", "Partition copies this member completed as the source (migrations, new backups)."),
		epoch:             d("partition_table_epoch", "Epoch of this member's partition table."),
		lost:              d("partitions_lost_total", "Partition losses this member has seen."),
		raftLeader:        d("raft_leader", "1 if this member is the raft leader (the coordinator), else 0."),
		raftTerm:          d("raft_term", "This member's current raft term."),
		raftVoters:        d("raft_voters", "Raft voters this member knows."),
		raftLastIndex:     d("raft_last_index", "Index of this member's last raft log entry."),
		members:           d("members", "Members this member knows, by state (alive, dead, leaving).", "state"),
		topicPublished:    d("topic_published_total", "Messages published to the topic through this member.", "topic"),
		topicReceived:     d("topic_received_total", "Messages of the topic delivered to this member's subscribers.", "topic"),
		topicSubscribers:  d("topic_subscribers", "Subscribers of the topic on this member.", "topic"),
		queueSize:         d("queue_size", "Items of the queue this member holds, by role (owner or backup).", "queue", "role"),
		transportBytes:    d("transport_bytes_total", "Bytes of the frames this member's connections to other members wrote (out) and read (in).", "direction"),
		transportFrames:   d("transport_frames_received_total", "Frames this member's connections to other members read."),

		queueGiveBacks:       d("queue_giveback_items_total", "Items of takes whose callers gave up, by outcome: returned to their queue's head, or lost (held when the member closed).", "outcome"),
		queueGiveBackUnknown: d("queue_giveback_unknown_total", "Removals of takes whose callers gave up whose outcome this member could not learn (each may have removed items for nobody)."),
		queueGiveBackHeld:    d("queue_giveback_held_items", "Items of takes whose callers gave up that this member holds, trying to return them."),
	}}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.descs
	for _, x := range []*prometheus.Desc{d.entries, d.paged, d.bytes, d.ops, d.opErrors, d.opLatency, d.dirty, d.dirtyBytes,
		d.lag, d.storeCalls, d.storeErrors, d.storeRetries, d.storeRejected, d.listeners, d.listenerQueued,
		d.listenerMissed, d.listenerDelivered, d.partitions, d.migrations, d.copies, d.epoch, d.lost,
		d.raftLeader, d.raftTerm, d.raftVoters, d.raftLastIndex, d.members, d.topicPublished, d.topicReceived,
		d.topicSubscribers, d.queueSize, d.transportBytes, d.transportFrames,
		d.queueGiveBacks, d.queueGiveBackUnknown, d.queueGiveBackHeld} {
		ch <- x
	}
}

// Collect implements prometheus.Collector: it reads the member's figures now.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m, d := c.m, &c.descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	st := m.engine.Stats()
	for _, ms := range st.Maps {
		if engine.IsStructureMapName(ms.Name) {
			continue // a queue's or topic's entries: the queue and topic series show them
		}
		gauge(d.entries, float64(ms.OwnedEntries), ms.Name, "owner")
		gauge(d.entries, float64(ms.BackupEntries), ms.Name, "backup")
		gauge(d.paged, float64(ms.OwnedPaged), ms.Name, "owner")
		gauge(d.paged, float64(ms.BackupPaged), ms.Name, "backup")
		gauge(d.bytes, float64(ms.OwnedBytes), ms.Name, "owner")
		gauge(d.bytes, float64(ms.BackupBytes), ms.Name, "backup")
		gauge(d.listeners, float64(ms.Listeners), ms.Name)
		gauge(d.listenerQueued, float64(ms.ListenerQueued), ms.Name)
		counter(d.listenerMissed, ms.ListenerMissed, ms.Name)
		counter(d.listenerDelivered, ms.ListenerDelivered, ms.Name)
	}
	for name, classes := range m.engine.OpStats() {
		if engine.IsStructureMapName(name) {
			continue
		}
		for cl, os := range classes {
			op := engine.OpClassNames[cl]
			counter(d.ops, os.Ops, name, op)
			counter(d.opErrors, os.Errors, name, op)
			buckets := make(map[float64]uint64, engine.LatencyBuckets)
			var cum uint64
			for b, n := range os.Latency {
				cum += n
				buckets[engine.LatencyBound(b).Seconds()] = cum
			}
			ch <- prometheus.MustNewConstHistogram(d.opLatency, os.Timed, os.LatencySum.Seconds(), buckets, name, op)
		}
	}
	for _, name := range m.engine.StoredMaps() {
		ps := m.engine.PersistenceStats(name)
		gauge(d.dirty, float64(ps.DirtyEntries), name)
		gauge(d.dirtyBytes, float64(ps.DirtyBytes), name)
		gauge(d.lag, ps.OldestDirty.Seconds(), name)
		counter(d.storeCalls, ps.StoreCalls, name)
		counter(d.storeErrors, ps.StoreErrors, name)
		counter(d.storeRetries, ps.Retries, name)
		counter(d.storeRejected, ps.Rejected, name)
	}
	gauge(d.partitions, float64(st.PartitionsOwned), "owner")
	gauge(d.partitions, float64(st.PartitionsBackedUp), "backup")
	gauge(d.migrations, float64(st.MigrationsIn), "in")
	gauge(d.migrations, float64(st.MigrationsOut), "out")
	counter(d.copies, st.CopiesDone)
	gauge(d.epoch, float64(st.TableEpoch))
	counter(d.lost, m.maps.PartitionsLost())

	rs := m.node.RaftStats()
	leader := 0.0
	if rs.State == "Leader" {
		leader = 1
	}
	gauge(d.raftLeader, leader)
	gauge(d.raftTerm, float64(rs.Term))
	gauge(d.raftLastIndex, float64(rs.LastIndex))
	var voters, alive, dead, leaving int
	for _, mi := range m.node.Members() {
		if mi.Voter {
			voters++
		}
		switch {
		case !mi.Alive:
			dead++
		case mi.Leaving:
			leaving++
		default:
			alive++
		}
	}
	gauge(d.raftVoters, float64(voters))
	gauge(d.members, float64(alive), "alive")
	gauge(d.members, float64(dead), "dead")
	gauge(d.members, float64(leaving), "leaving")

	if tr := m.obs.traffic; tr != nil {
		ts := tr.Snapshot()
		counter(d.transportBytes, ts.BytesOut, "out")
		counter(d.transportBytes, ts.BytesIn, "in")
		counter(d.transportFrames, ts.FramesIn)
	}
	if m.queues != nil {
		gb := m.queues.GiveBacks()
		counter(d.queueGiveBacks, gb.Returned, "returned")
		counter(d.queueGiveBacks, gb.Lost, "lost")
		counter(d.queueGiveBackUnknown, gb.Unknown)
		gauge(d.queueGiveBackHeld, float64(gb.Holding))
	}
	if dests := m.obs.dests.get(); dests != nil {
		for _, t := range dests.Topics() {
			counter(d.topicPublished, t.Published, t.Name)
			counter(d.topicReceived, t.Received, t.Name)
			gauge(d.topicSubscribers, float64(t.Subscribers), t.Name)
		}
		for _, q := range dests.Queues() {
			gauge(d.queueSize, float64(q.Size), q.Name, "owner")
			gauge(d.queueSize, float64(q.BackupSize), q.Name, "backup")
		}
	}
}
