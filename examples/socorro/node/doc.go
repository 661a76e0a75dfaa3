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
// With a DataDir, the maps without an external store live in the member's data folder
// (gridmap Config.DataDir): the whole cluster stopped and started again on its folders finds
// every report, processed crash and process entry again, and the sweeper processes the crashes
// that were waiting. Config.MemoryBudget bounds the entries held; a write beyond it is refused
// and /submit answers 503 with Retry-After.
package node
