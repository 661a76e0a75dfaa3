// Package partition decides where a map's entries live: the hash that maps a
// key to one of the partitions, the partition table that says which members
// hold each partition, and the planner that moves the table toward a balanced
// assignment as members join, leave and die.
//
// It is pure logic: no I/O, no goroutines, no clocks. The control plane calls
// Plan whenever the membership changes (and after each Complete, to start the
// next copies), commits the returned table through raft, lets the owners copy
// partitions to the pending members, and calls Complete when an owner reports
// that a pending member is in sync.
//
// # The table
//
// Each partition has an owner (Replicas[0]), synchronous backups
// (Replicas[1:], in promotion order) and pending members receiving a copy
// from the owner. Every change increments the epoch, so a member can refuse
// an operation routed with another epoch.
//
// # The plan
//
// The target has min(Backups+1, active members) replicas per partition on
// distinct members, owners per active member within one of each other and
// replicas per member within one where the distinct-member rule allows.
// Moves are few: when a member joins an N-member cluster about 1/(N+1) of
// the replica slots move to it; when one leaves or dies only the partitions
// it held move. A live owner is never replaced directly: the new owner
// first receives a copy (Pending.AsOwner) and takes over through Complete.
// When the member that should take over is already a backup, the pending
// AsOwner entry names that backup (a promotion hand-off with nothing to copy).
// Dead owners are replaced at once by their first live backup; a partition
// whose replicas all died is reported lost and assigned afresh.
package partition
