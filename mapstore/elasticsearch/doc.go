// Package elasticsearch is a mapstore backend on Elasticsearch 8: each entry of a map is one JSON
// document whose _id is the key, so the entries can be searched (Find, Count) while gridmap
// serves them from memory.
//
// # Writes
//
// StoreAll and DeleteAll go through the bulk API. A call is split into bulk requests of at most
// Config.BulkBytes, and the Store keeps at most Config.BulkWorkers requests in flight over all its
// calls (gridmap's flushers call it for several partitions at once). Only the documents the server
// refuses are sent again: a 429 (too many requests) or a 5xx for a document is retried with
// backoff, and a 429 also slows every request of the Store down until the server accepts again,
// instead of failing. A 4xx for a document (a value the mapping refuses) can never succeed: the
// call stores every other document and returns a *mapstore.RejectedError naming the refused keys,
// which write-behind counts in the map's persistence statistics (dmap.PersistenceStats.Rejected),
// logs, and does not retry. A server that is down (ErrUnavailable), answers garbage
// (ErrBadResponse) or refuses a whole request (ErrServer) fails the call, which write-behind
// retries later: the entries stay dirty, in memory and on the backups, until the server is back.
// Every operation is idempotent, as the mapstore contract requires.
//
// # Indices
//
// Config.Index names one index per map, or a pattern with time verbs that puts each document in
// the index of its period (Socorro: "socorro%Y%W", one index a week); Config.KeyTime then finds
// the period from the key alone, so that Load and Delete know where to look. Before its first
// write the Store installs an index template with Config.Settings and Config.Mappings for every
// index of the pattern. Config.Document maps a value to its document (for example to leave a
// binary dump out), and Config.Value maps a loaded document back to a value.
//
// # Reads
//
// Load and LoadAll use _mget (no refresh needed: they see every stored document). LoadAllKeys
// refreshes, then pages through a point in time with search_after. Find and Count search the
// documents refreshed so far; Refresh makes every stored document visible to them.
//
// # Tests
//
// The tests run against a real server: .ci/elasticsearch.sh start runs one on port 9200, and the
// tests read its address from GRIDMAP_ES_URL; without it they skip (they fail with CI=true).
// TestOutage stops and restarts a second server of its own (CI runs it; elsewhere -es.outage),
// and TestLoadAllKeysLarge lists 100,000 documents under CI or with -es.large (20,000 otherwise).
// BenchmarkWriteBehind measures the write-behind rate of processed-crash-like documents.
package elasticsearch
