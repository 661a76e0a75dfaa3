package replicadisk

import (
	"cmp"
	"encoding/binary"
	"fmt"
)

// Mark says how recent one member's copy of a partition is. Marks of copies of the same
// partition compare field by field, in order:
//
//   - Life counts the cluster's restarts as the partition saw them: a partition restored from
//     the copies of life L lives in life L+1. A copy of a later life is newer than any copy of
//     an earlier one, whatever their epochs (each life has its own raft group and table epochs).
//   - Epoch is the partition table epoch with which the copy's last write or full copy was
//     sent (by the owner, or to the owner at its takeover). An owner's epochs only grow, and a
//     later owner's are higher than an earlier one's, so the copy of a later owner wins even
//     when an earlier owner wrote more (unacknowledged writes that died with it).
//   - Seq is the partition's mutation sequence number: within an epoch, more writes is newer.
//   - Owner: the copy was written by the partition's owner. Between equal marks it wins, since
//     an owner always holds every write it numbered, and a backup that missed one does not.
type Mark struct {
	Life  uint64
	Epoch uint64
	Seq   uint64
	Owner bool
}

// markSize is the length of an encoded Mark.
const markSize = 25

// Compare returns -1, 0 or +1 as m is older than, as recent as, or newer than o.
func (m Mark) Compare(o Mark) int {
	if c := cmp.Compare(m.Life, o.Life); c != 0 {
		return c
	}
	if c := cmp.Compare(m.Epoch, o.Epoch); c != 0 {
		return c
	}
	if c := cmp.Compare(m.Seq, o.Seq); c != 0 {
		return c
	}
	switch {
	case m.Owner == o.Owner:
		return 0
	case m.Owner:
		return 1
	}
	return -1
}

func (m Mark) String() string {
	return fmt.Sprintf("life %d epoch %d seq %d owner %t", m.Life, m.Epoch, m.Seq, m.Owner)
}

func (m Mark) encode() []byte {
	b := make([]byte, markSize)
	binary.BigEndian.PutUint64(b, m.Life)
	binary.BigEndian.PutUint64(b[8:], m.Epoch)
	binary.BigEndian.PutUint64(b[16:], m.Seq)
	if m.Owner {
		b[24] = 1
	}
	return b
}

func decodeMark(b []byte) (Mark, error) {
	if len(b) != markSize || b[24] > 1 {
		return Mark{}, fmt.Errorf("%w: mark of %d bytes", ErrCorrupt, len(b))
	}
	return Mark{Life: binary.BigEndian.Uint64(b), Epoch: binary.BigEndian.Uint64(b[8:]),
		Seq: binary.BigEndian.Uint64(b[16:]), Owner: b[24] == 1}, nil
}

// Candidate is one member's newest complete copy of a partition, as a restore sees it.
type Candidate struct {
	Member string
	Mark   Mark
}

// Best returns the candidate whose copy a restore loads: the newest mark, and between equal
// marks (copies that are the same content) the lowest member name, so that every restorer
// chooses alike. ok is false when there is no candidate: the partition had no copy on any
// member consulted.
func Best(cands []Candidate) (best Candidate, ok bool) {
	for _, c := range cands {
		if !ok {
			best, ok = c, true
			continue
		}
		switch c.Mark.Compare(best.Mark) {
		case 1:
			best = c
		case 0:
			if c.Member < best.Member {
				best = c
			}
		}
	}
	return best, ok
}
