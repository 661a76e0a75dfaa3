// Package gridmap is an embedded, partitioned, replicated in-memory map with write-behind
// persistence, in the model of Hazelcast's IMap, for Go services.
//
// # Members
//
// A service becomes a cluster member by calling Start with a Config: the addresses to bind, the
// seeds to join (or a discovery.Discovery such as a Kubernetes headless service), the partition
// count (271) and the backup count (1). Members find each other and detect failures with
// hashicorp/memberlist. Up to three (or five) of them are raft voters (hashicorp/raft); the raft
// leader is the coordinator, and the partition table it commits through raft is the one source of
// truth for ownership: for every partition, an owner, its backups on other members, and an epoch
// that only grows.
//
// # Maps
//
// GetMap returns a typed view, dmap.Map[K, V], of a map shared by the whole cluster. A key's
// partition is a stable hash of its encoded bytes, or of its dmap.PartitionAware partition key,
// so equal keys in different maps ("co-keyed" entries) live on the same member. Every operation
// is routed to the partition's owner with the epoch it was routed with; a member that does not
// own the partition at that epoch refuses, and the caller re-routes without the user noticing.
// A write returns once the owner applied it and every synchronous backup acknowledged it, so any
// BackupCount members may crash at once without losing an acknowledged write.
//
// # Membership changes
//
// When members join or leave, the coordinator plans a balanced table with few moves. A partition
// moves by being copied to its new member while writes go on (and are replicated to the new
// member too); only the final hand-off pauses that one partition's writers. A member that leaves
// with Close hands its partitions off first; a member that crashes is replaced by promoting a
// backup, and the backup count is then restored by copying. An owner that loses contact with the
// raft majority stops serving before the coordinator may reassign its partitions (owner leases).
//
// # Failure timings and the cluster view
//
// Config.Timings decides how fast a crash is repaired against how much delay a healthy member
// may show before it is suspected. Pick a preset and change single fields if needed:
// LANTimings (the default) for one data center; LocalTimings for members on one machine (tests,
// demos), which repairs a crash within a few seconds but takes a member that pauses for a
// second for dead; WANTimings across data centers or lossy links, which tolerates pauses of
// seconds and serves a crashed member's partitions again after about 20 seconds. Each preset's
// doc states what a crash costs; docs/failover.md has the measurements.
//
// Member.Cluster shows the members, the raft leader and voters, and where each partition (and
// so each key: PartitionOfKey) lives. Cluster.WaitSafe waits until every partition has its
// backups and nothing is moving: wait for it between the steps of a rolling restart. A
// partition whose every copy died is marked lost, reported to partition listeners
// (dmap.PartitionLost) and refused until Cluster.ResetLostPartitions, unless
// Config.RecreateLostPartitions re-creates it empty at once.
//
// # Processing next to the data
//
// A local entry listener (dmap.Map.AddLocalEntryListener) runs on the member that owns each
// entry, once per event, in order per key, from its own bounded queue; when the queue
// overflows, writes go on and the listener gets a notice with the exact number of events it
// missed. An event is published once reads see its write (after the backups acknowledged it),
// so a listener can read the entry, or a co-keyed entry of the same transaction, it is told of.
// With Config.AsyncBackups the event, like the acknowledgement, comes once the owner applied the
// write: the listener still reads it, but the write can be lost with its owner.
// After a failover or migration the new owner's listeners take over, and an application
// finishes lingering work by sweeping LocalEntries. Cluster-wide listeners filter on the owner
// with predicates registered by name on every member. Entry processors (dmap.Execute) run on the
// owner atomically with respect to the key, exactly once across retries. Key locks
// (dmap.Map.Lock) hold other writers back and die with their holder's member. Transactions
// (Service.Begin or Service.RunTx, which retries conflicts; dmap.InTx) over co-keyed entries of
// several maps commit atomically on their owner; only the entries a transaction read are
// checked for conflicts, and writes need no round trip before the commit.
//
// Topics (package topic, on Member.Topics) deliver every message published on any member to
// every subscriber on every member, in the one order the owner of the topic's partition numbered
// them; a subscriber that falls behind repairs the gap from the topic's replicated ring or is
// told the exact count it missed, and a reliable topic lets a subscriber resume from a sequence
// number.
//
// # Persistence
//
// Config.Maps gives a map a store (mapstore.Store; mapstore/pebblestore is the embedded
// default). With a write delay of 0 a write reaches the store before it is acknowledged. With a
// delay, dirty entries wait in a per-partition queue that the backups keep too and that moves
// with migrations; they are stored in batches, retried for as long as the store fails, never
// evicted, and writers get back-pressure at the dirty-data limit. A map with a loader reads
// missing keys through and loads the store's keys once for the whole cluster; a member memory
// budget evicts clean entries, least recently used first.
//
// # Security
//
// Off by default. Config.Security makes member connections (map traffic and raft) mutual TLS
// 1.3 with certificates reloaded when their files change, encrypts the gossip with a keyring
// that rotates without downtime (Cluster.InstallGossipKey, UseGossipKey, RemoveGossipKey), and
// checks a cluster name and a join secret before a member is admitted, so that strangers and
// other clusters on the same network never get in (Start fails with ErrJoinRefused; the members
// log the refused address).
//
// # Layout
//
//	partition/            hashing, the table and the planner (pure logic)
//	dmap/                 typed maps: codecs, listeners, processors, locks, transactions, errors
//	topic/                publish/subscribe: Topic[T], its ring, subscriptions
//	listener/             entry events and their bounded per-listener dispatch
//	mapstore/             the store contract and its configuration; memstore, pebblestore,
//	                      elasticsearch, hbase
//	internal/engine/      the untyped map engine: record stores, routing, backups, migration,
//	                      resync, events, persistence wiring, the wire
//	internal/writebehind/ the write-behind queue and dirty-data budget
//	internal/enginetest/  the engine's and dmap's test harness: a coordinator played by the
//	                      test, members over transport's in-memory network
//	internal/browsertest/ headless chromium for the console's and Socorro's browser tests
//	discovery/            how a member finds its seeds
//	gridmaptest/          real in-process clusters for an application's tests
//	internal/transport/   framed, multiplexed member-to-member TCP (and raft's stream), and
//	                      the in-memory network of the tests (on internal/memnet's pipes)
//	internal/membership/  memberlist
//	internal/control/     raft, the coordinator, owner leases
//	cmd/gridmap-bench/    the load tool
//	cmd/gridmap-certs/    a development CA and member certificates for TLS
//	examples/             quickstart, embed, member (one member per process), socorro
//
// The repository's README.md is the five-minute tour; docs/ explains the design, operations
// (sizing, timings, Kubernetes), writing a store adapter, failover and performance.
package gridmap
