package partition

// DefaultCount is the default number of partitions of a cluster. A prime
// spreads keys with regular structure (sequential numbers, fixed-width
// prefixes) evenly.
const DefaultCount = 271

// ID identifies a partition: 0 <= ID < count.
type ID int32

// FNV-1a 64-bit parameters (http://www.isthe.com/chongo/tech/comp/fnv/).
const (
	fnvOffset64 uint64 = 14695981039346656037
	fnvPrime64  uint64 = 1099511628211
)

// Of maps a partition key to its partition: the FNV-1a 64-bit hash of key,
// modulo count. The function is stable forever: every member, every map and
// every release computes the same partition for the same key and count, so
// co-keyed entries of different maps live together.
//
// count must be positive; Of panics otherwise, like an integer division by
// zero. Of does not allocate and does not retain key.
func Of(key []byte, count int) ID {
	if count <= 0 {
		panic("partition: Of: count must be positive")
	}
	h := fnvOffset64
	for _, b := range key {
		h ^= uint64(b)
		h *= fnvPrime64
	}
	return ID(h % uint64(count))
}
