// Package node is one Socorro node: a gridmap member that is both collector and processor, and
// serves the demo's pages.
//
// The collector's POST /submit stores each accepted report in map crashReports and its crash ID
// with its arrival time in map process, in one co-keyed transaction (package gridstore). The
// processor is a local entry listener on process: it runs on the entry's owner, reads the report
// there, writes the processed crash to map processedCrashes and removes the process entry. A
// sweeper walks this member's own process entries and processes those older than
// Config.SweepAge: the events a listener missed (queue overflow, failover, migration). A crash
// processed twice keeps its first processed crash (PutIfAbsent), so the pipeline is exactly once
// in effect.
//
// With a DataDir, the three maps write behind to the embedded pebble store, one directory per
// map, and Config.MemoryBudget evicts clean entries, which are read through again when used.
package node
