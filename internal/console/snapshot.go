package console

import (
	"slices"
	"strings"
)

// Member is one member's state as the console shows it. A member builds its own (the local
// figures) and the console's member gathers the others' over the member transport; every field
// is plain data so that it travels as msgpack and serves as JSON.
type Member struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Addr       string `json:"addr"`
	GossipAddr string `json:"gossipAddr"`
	// Role is "leader" (the raft leader, the coordinator), "voter" or "member".
	Role    string `json:"role"`
	Alive   bool   `json:"alive"`
	Leaving bool   `json:"leaving,omitempty"`
	// Local: the member whose console answered.
	Local bool `json:"local,omitempty"`
	// Error is set when the member's own figures could not be fetched (it did not answer):
	// the fields below are then empty.
	Error string `json:"error,omitempty"`

	PartitionsOwned    int    `json:"partitionsOwned"`
	PartitionsBackedUp int    `json:"partitionsBackedUp"`
	MigrationsIn       int    `json:"migrationsIn"`
	MigrationsOut      int    `json:"migrationsOut"`
	CopiesDone         uint64 `json:"copiesDone"`
	TableEpoch         uint64 `json:"tableEpoch"`
	// EntryBytes is the memory of the entries the member holds (owned and backup, as
	// MemoryBudget counts it); HeapBytes the Go heap of its process.
	EntryBytes int64  `json:"entryBytes"`
	HeapBytes  uint64 `json:"heapBytes"`
	RaftState  string `json:"raftState"`
	RaftTerm   uint64 `json:"raftTerm"`
	// Ops counts the map operations the member's callers ran since it started; Rates are its
	// operations per second over the last minutes (one per second, oldest first) and RatesAt
	// the time of the newest (Unix milliseconds).
	Ops     uint64    `json:"ops"`
	Rates   []float64 `json:"rates"`
	RatesAt int64     `json:"ratesAt"`
	Maps    []Map     `json:"maps"`
	Topics  []Topic   `json:"topics"`
	Queues  []Queue   `json:"queues"`
}

// Map is a map's figures on one member, or summed over the cluster.
type Map struct {
	Name          string `json:"name"`
	Entries       int    `json:"entries"`
	BackupEntries int    `json:"backupEntries"`
	Bytes         int64  `json:"bytes"`
	BackupBytes   int64  `json:"backupBytes"`
	// Stored: the map has a store (write-through or write-behind) or a loader.
	Stored bool `json:"stored"`
	// Dirty and DirtyBytes are the entries waiting to be stored; OldestDirtyMs the age of the
	// oldest (the write-behind lag, the largest over members when summed).
	Dirty         int    `json:"dirty"`
	DirtyBytes    int64  `json:"dirtyBytes"`
	OldestDirtyMs int64  `json:"oldestDirtyMs"`
	StoreErrors   uint64 `json:"storeErrors"`
	LastError     string `json:"lastError,omitempty"`
	// Ops counts the operations by class (get, put, ...); ListenerMissed the events local
	// listeners missed because their queues were full; ListenerQueued those waiting.
	Ops            map[string]uint64 `json:"ops"`
	Listeners      int               `json:"listeners"`
	ListenerQueued int               `json:"listenerQueued"`
	ListenerMissed uint64            `json:"listenerMissed"`
}

// Cluster is the whole cluster as one member's console shows it.
type Cluster struct {
	// Self is the ID of the member that answered; Leader the raft leader's ("" none known).
	Self   string `json:"self"`
	Leader string `json:"leader"`
	// PartitionCount and Epoch describe the answering member's partition table; Owners counts
	// the partitions it assigns to each member as owner, Backups as backup; Migrations counts
	// the copies in flight; Lost lists the partitions marked lost.
	PartitionCount int            `json:"partitionCount"`
	Epoch          uint64         `json:"epoch"`
	Owners         map[string]int `json:"owners"`
	Backups        map[string]int `json:"backups"`
	Migrations     int            `json:"migrations"`
	Lost           []int          `json:"lost"`
	// Safe: every partition has its backups and nothing is moving (Cluster.Safe).
	Safe bool `json:"safe"`
	// Members lists the members the control plane knows, sorted by ID, dead ones included
	// until the coordinator removes them.
	Members []Member `json:"members"`
	// Maps, Topics and Queues are summed over the members that answered.
	Maps   []Map   `json:"maps"`
	Topics []Topic `json:"topics"`
	Queues []Queue `json:"queues"`
	// CanWrite: a token is configured, so the publish form may be used with it.
	CanWrite bool `json:"canWrite"`
	// Time is when the view was taken (Unix milliseconds, the answering member's clock).
	Time int64 `json:"time"`
}

// Summarize fills c.Maps, c.Topics and c.Queues by summing those of c.Members.
func (c *Cluster) Summarize() {
	maps := map[string]*Map{}
	topics := map[string]*Topic{}
	queues := map[string]*Queue{}
	for _, m := range c.Members {
		for _, mp := range m.Maps {
			s := maps[mp.Name]
			if s == nil {
				s = &Map{Name: mp.Name, Ops: map[string]uint64{}}
				maps[mp.Name] = s
			}
			s.Entries += mp.Entries
			s.BackupEntries += mp.BackupEntries
			s.Bytes += mp.Bytes
			s.BackupBytes += mp.BackupBytes
			s.Stored = s.Stored || mp.Stored
			s.Dirty += mp.Dirty
			s.DirtyBytes += mp.DirtyBytes
			s.OldestDirtyMs = max(s.OldestDirtyMs, mp.OldestDirtyMs)
			s.StoreErrors += mp.StoreErrors
			if mp.LastError != "" {
				s.LastError = mp.LastError
			}
			for k, v := range mp.Ops {
				s.Ops[k] += v
			}
			s.Listeners += mp.Listeners
			s.ListenerQueued += mp.ListenerQueued
			s.ListenerMissed += mp.ListenerMissed
		}
		for _, t := range m.Topics {
			s := topics[t.Name]
			if s == nil {
				s = &Topic{Name: t.Name}
				topics[t.Name] = s
			}
			s.Published += t.Published
			s.Received += t.Received
			s.Subscribers += t.Subscribers
		}
		for _, q := range m.Queues {
			s := queues[q.Name]
			if s == nil {
				s = &Queue{Name: q.Name}
				queues[q.Name] = s
			}
			s.Size += q.Size
			s.BackupSize += q.BackupSize
		}
	}
	c.Maps = sortedValues(maps, func(m *Map) string { return m.Name })
	c.Topics = sortedValues(topics, func(t *Topic) string { return t.Name })
	c.Queues = sortedValues(queues, func(q *Queue) string { return q.Name })
}

func sortedValues[T any](m map[string]*T, name func(*T) string) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(name(&a), name(&b)) })
	return out
}
