// Package memberhook lets package gridmaptest crash a *gridmap.Member, which package gridmap
// keeps unexported: a crash without a hand-off is a test's tool, not an application's.
//
// Package gridmap sets Kill in its init and nothing changes it afterwards, so it is a constant
// in practice, not shared mutable state: it is a variable only because gridmap imports this
// package, and this package cannot import gridmap.
package memberhook

// Kill stops a *gridmap.Member at once, as a crash would: no hand-off of its partitions, no
// gossip leave, its write-behind queues not flushed. The others notice its death as after a
// kill -9 and promote its backups. Set by package gridmap; panics for any other type.
var Kill func(member any)
