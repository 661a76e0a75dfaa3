// Package engine is the untyped map engine of a gridmap member: one Service per member holds
// the record stores of the partitions it owns or backs up, routes operations to partition
// owners, replicates writes to backups, copies partitions when the table moves them, resyncs
// backups after a failover, remembers answers for exactly-once retries, drives write-behind
// persistence, and publishes entry events. Keys and values are bytes here; package dmap is the
// typed façade users see, and further façades (Topic, Queue) are meant to sit on the same
// Service.
//
// Files, one concept each:
//
//	service.go, config.go, cluster.go   the Service, its configuration, its view of the control plane
//	rawmap.go, api.go                   what a façade calls: Map (an untyped map handle), request vocabulary
//	route.go, owner.go, op.go           routing to the owner, the owner's serving of an operation
//	backup.go, nonblocking.go           replication to backups (synchronous, asynchronous, inline)
//	migrate.go, resync.go               partition copies and the resync of backups after a failover
//	answers.go, callercopy.go           exactly-once retries; values a backup caller keeps for its owner
//	record.go, entrytable.go            a partition's records and their storage
//	lock.go, txn.go, processor.go,      key locks, transactions, entry processors (owner side),
//	  partition_processor.go              processors over several entries of one partition (queues, topics)
//	events.go, cluster_listener.go,     entry events, cluster-wide listeners, partition events
//	  partition_events.go
//	persist.go, load.go, evict.go,      write-behind and write-through, loads, the memory budget,
//	  breaker.go                          the store breaker
//	wire.go, wire_op.go, wire_batch.go, every message between members, one appender and one reader each
//	  wire_msgs.go
//	errors.go                           the sentinels and the status table that carries them
package engine
