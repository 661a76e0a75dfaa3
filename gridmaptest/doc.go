// Package gridmaptest starts in-process gridmap clusters for tests: an application's own tests
// of code that uses gridmap maps, listeners and stores, with real members (gossip, raft,
// partition table, synchronous backups) rather than a fake.
//
//	func TestReports(t *testing.T) {
//		c := gridmaptest.NewCluster(t, 3)
//		reports, err := gridmap.GetMap[string, Report](c.Member(0), "reports")
//		...
//		c.Kill(1)     // a crash: no hand-off
//		c.WaitSafe()  // its partitions served again from their backups
//	}
//
// A cluster is ready when NewCluster returns (every partition owned and backed up, every member
// agreeing on the table), uses fast failure detection (gridmap.LocalTimings) and is stopped by
// t.Cleanup. Its members talk through in-memory networks of their own and open no port, so
// tests may run many clusters side by side, and Partition can split those networks (a
// split-brain test) until Heal; WithSockets puts the members on loopback instead.
package gridmaptest
