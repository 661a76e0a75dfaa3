// Package dmap is the typed API of gridmap's distributed maps: Map[K, V] and what goes with it
// (codecs, listeners, entry processors, key locks, transactions, errors).
//
// # Maps
//
// A Map is a typed view of one map shared by the whole cluster. Its entries are spread over the
// cluster's partitions by a stable hash of the encoded key (or of its PartitionAware partition
// key, so that equal keys in different maps live together), each partition held by one owner
// member and backed up on others. Get one from a running member:
//
//	m, err := gridmap.GetMap[string, Report](member, "reports")
//
// or, equivalently, with New on the member's Service (gridmap.Member.Maps). Maps are cheap
// views: open them as often as convenient. Keys and values are encoded with DefaultCodec
// ([]byte and string as they are, anything else with msgpack) unless WithKeyCodec or
// WithValueCodec says otherwise; every member must use compatible codecs for a map.
//
// # Consistency
//
// Every operation runs on the key's owner, so reads see the latest acknowledged write. A write
// returns once the owner applied it and every synchronous backup acknowledged it: with B backups,
// any B members may crash at once without losing an acknowledged write.
//
// # Beyond Get and Put
//
//   - Listeners: AddLocalEntryListener runs on the owner of each entry, in order per key, from a
//     bounded queue that reports overflow with the exact count missed; AddEntryListener delivers
//     a map's events cluster-wide, filtered on the owners by key or by a predicate registered
//     with RegisterPredicate. Service.AddPartitionListener reports migrations and lost
//     partitions. Every registration returns a ListenerHandle (Remove, Stats).
//   - Entry processors: RegisterProcessor (on every member), then Execute, ExecuteOnKeys or
//     ExecuteOnEntries run typed code on the owner, atomically with respect to the key; error
//     values registered with Service.RegisterProcessorError reach the caller as themselves.
//   - Locks: Map.Lock (waiting as long as its context allows) and Map.TryLock (not waiting)
//     hold other writers of a key back; the lock survives its owner's failure and dies with
//     its holder's member.
//   - Transactions: Service.RunTx (or Service.Begin and InTx) commits writes to co-keyed entries
//     of several maps atomically on their owner.
//   - Persistence: gridmap.Config.Maps gives a map a store and loader (MapConfig);
//     Service.PersistenceStats reports its write-behind queue.
//
// # Errors
//
// Operations fail with the sentinel errors of this package (ErrNotFound, ErrTimeout,
// ErrConflict, ErrPartitionLost, ...), checked with errors.Is, whether the failure happened on
// this member or on a remote owner. ErrTimeout also wraps the context's error.
package dmap
