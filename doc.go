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
// # Layout
//
//	partition/            hashing, the table and the planner (pure logic)
//	dmap/                 typed maps, record stores, routing, backups, migration
//	discovery/            how a member finds its seeds
//	internal/transport/   framed, multiplexed member-to-member TCP (and raft's stream)
//	internal/membership/  memberlist
//	internal/control/     raft, the coordinator, owner leases
//	cmd/gridmap-bench/    the load tool
package gridmap
