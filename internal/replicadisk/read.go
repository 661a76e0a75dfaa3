package replicadisk

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Value reads one entry of partition part's copy of life life: its value (a copy, aliasing
// nothing of the folder) and expiry. found is false when the copy holds no such entry. The
// engine reads the values it paged out of memory this way (see the engine's paging.go): the
// folder's copy of a partition its member holds is always as current as the member's memory.
func (d *Disk) Value(part uint32, life uint64, mapName string, key []byte) (value []byte, expireAt int64, found bool, err error) {
	if d.closed.Load() {
		return nil, 0, false, ErrClosed
	}
	v, closer, err := d.db.Get(entryKey(part, life, mapName, key))
	if err == pebble.ErrNotFound {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("replicadisk: %w", err)
	}
	defer closer.Close()
	if len(v) < 8 {
		return nil, 0, false, fmt.Errorf("%w: entry value of %d bytes", ErrCorrupt, len(v))
	}
	out := make([]byte, len(v)-8)
	copy(out, v[8:])
	return out, int64(binary.BigEndian.Uint64(v)), true, nil
}
