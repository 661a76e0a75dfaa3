package replicadisk

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// A folder's identity and the folders it remembers (docs/restart.md, "Which folders a restore
// waits for").
//
// Each folder has a stable random ID, created the first time it is asked for, and remembers
// the IDs of the folders of the cluster it last served in: the engine records them as the
// partition table changes. At a restart, a partition is restored only once every folder that
// the present folders remember is present, so that a copy newer than the best present one
// cannot be on an absent folder. Keys: 'f' | "id" and 'f' | "members" (copies use 'e' and 'm').

var (
	folderIDKey      = []byte("fid")
	folderMembersKey = []byte("fmembers")
)

// FolderID returns the folder's stable ID, creating and durably storing it on the first call.
// The engine calls it once, at the member's start; two concurrent first calls could create two
// IDs.
func (d *Disk) FolderID() (string, error) {
	if d.closed.Load() {
		return "", ErrClosed
	}
	v, closer, err := d.db.Get(folderIDKey)
	if err == nil {
		id := string(v)
		closer.Close()
		if !validFolderID(id) {
			return "", fmt.Errorf("%w: folder ID %q", ErrCorrupt, id)
		}
		return id, nil
	}
	if err != pebble.ErrNotFound {
		return "", fmt.Errorf("replicadisk: %w", err)
	}
	id := hex.EncodeToString(randomBytes())
	if err := d.db.Set(folderIDKey, []byte(id), pebble.Sync); err != nil {
		return "", fmt.Errorf("replicadisk: %w", err)
	}
	return id, nil
}

func randomBytes() []byte {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

func validFolderID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Remembered returns the IDs of the folders this folder remembers (sorted), none for a new
// folder.
func (d *Disk) Remembered() ([]string, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	v, closer, err := d.db.Get(folderMembersKey)
	if err == pebble.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replicadisk: %w", err)
	}
	defer closer.Close()
	return decodeFolderIDs(v)
}

// Remember durably replaces the folders this folder remembers with ids (any order, duplicates
// ignored).
func (d *Disk) Remember(ids []string) error {
	if d.closed.Load() {
		return ErrClosed
	}
	for _, id := range ids {
		if !validFolderID(id) {
			return fmt.Errorf("replicadisk: invalid folder ID %q", id)
		}
	}
	if err := d.db.Set(folderMembersKey, encodeFolderIDs(ids), pebble.Sync); err != nil {
		return fmt.Errorf("replicadisk: %w", err)
	}
	return nil
}

// SortedIDs returns ids sorted, without duplicates or empty IDs (a member without a folder).
func SortedIDs(ids []string) []string {
	out := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

func encodeFolderIDs(ids []string) []byte { return []byte(strings.Join(SortedIDs(ids), ",")) }

func decodeFolderIDs(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	ids := strings.Split(string(b), ",")
	for _, id := range ids {
		if !validFolderID(id) {
			return nil, fmt.Errorf("%w: remembered folder ID %q", ErrCorrupt, id)
		}
	}
	return ids, nil
}
