// Package gridmap is an embedded, partitioned, replicated in-memory map with
// write-behind persistence, in the model of Hazelcast's IMap.
package gridmap
