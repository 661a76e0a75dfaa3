package mapstore_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
)

// dirStore is a complete small adapter, the one docs/mapstore.md walks through: each entry is a
// file in a directory, named "k" and the hex of its key. It implements Store and BatchStore (writes),
// Loader and KeyLoader (read-through and the initial load).
//
// The contract it keeps: every call is idempotent (a write replaces the whole file through a
// rename, a delete of a missing file succeeds), it copies nothing it keeps (the bytes go straight
// to the file), it honours ctx between entries, and it tells a refusal for good (a value over
// maxValue: retrying can never help) from a failure worth retrying (any I/O error).
type dirStore struct {
	dir      string
	maxValue int
}

// The reasons given for entries the store will never take.
var (
	errTooLarge   = errors.New("value larger than the store takes")
	errKeyTooLong = errors.New("key longer than a file name holds")
)

// maxKey is the longest key a file name can hold (255 bytes: "k" and two hex digits a byte).
const maxKey = 127

func (s *dirStore) path(key []byte) string {
	return filepath.Join(s.dir, "k"+hex.EncodeToString(key))
}

// write stores one entry atomically: a reader (or a crash) sees the old file or the new one.
func (s *dirStore) write(key, value []byte) error {
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename this fails harmlessly
	if _, err := tmp.Write(value); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path(key))
}

// Store implements mapstore.Store.
func (s *dirStore) Store(ctx context.Context, key, value []byte) error {
	return s.StoreAll(ctx, [][]byte{key}, [][]byte{value})
}

// Delete implements mapstore.Store: deleting a missing key is not an error.
func (s *dirStore) Delete(ctx context.Context, key []byte) error {
	return s.DeleteAll(ctx, [][]byte{key})
}

// StoreAll implements mapstore.BatchStore. An I/O error fails the whole call, which write-behind
// retries as a whole (the entries already written are written again: idempotent). A value over
// the limit is skipped and reported in a *mapstore.RejectedError once every other entry is
// written, so write-behind acknowledges the rest and does not retry it.
func (s *dirStore) StoreAll(ctx context.Context, keys, values [][]byte) error {
	var rejected mapstore.RejectedError
	for i, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		var reason error
		switch {
		case len(key) > maxKey:
			reason = fmt.Errorf("%w: %d bytes", errKeyTooLong, len(key))
		case len(values[i]) > s.maxValue:
			reason = fmt.Errorf("%w: %d bytes", errTooLarge, len(values[i]))
		}
		if reason != nil {
			rejected.Keys = append(rejected.Keys, append([]byte(nil), key...)) // copies: ours now
			rejected.Reasons = append(rejected.Reasons, reason)
			continue
		}
		if err := s.write(key, values[i]); err != nil {
			return err
		}
	}
	if len(rejected.Keys) > 0 {
		return &rejected
	}
	return nil
}

// DeleteAll implements mapstore.BatchStore.
func (s *dirStore) DeleteAll(ctx context.Context, keys [][]byte) error {
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(key) > maxKey {
			continue // never stored
		}
		if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Load implements mapstore.Loader: a missing file is "not found", not an error.
func (s *dirStore) Load(ctx context.Context, key []byte) ([]byte, bool, error) {
	if len(key) > maxKey {
		return nil, false, nil // never stored
	}
	v, err := os.ReadFile(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// LoadAllKeys implements mapstore.KeyLoader, one directory entry at a time.
func (s *dirStore) LoadAllKeys(ctx context.Context, fn func(key []byte) error) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name, ok := strings.CutPrefix(e.Name(), "k")
		key, err := hex.DecodeString(name)
		if !ok || err != nil {
			continue // a temporary file of an interrupted write
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	return nil
}

// The compiler checks the interfaces gridmap looks for.
var (
	_ mapstore.BatchStore = (*dirStore)(nil)
	_ mapstore.Loader     = (*dirStore)(nil)
	_ mapstore.KeyLoader  = (*dirStore)(nil)
)

// A custom store behind a write-behind map: writes are acknowledged at once, stored in batches
// after the delay, and a value the store refuses for good is counted, not retried forever.
func Example_adapter() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "dirstore")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store := &dirStore{dir: dir, maxValue: 1 << 10}

	member, err := gridmap.Start(ctx, gridmap.Config{Maps: map[string]dmap.MapConfig{
		"reports": {Store: store, Persistence: mapstore.Config{WriteDelay: 50 * time.Millisecond, BatchSize: 100}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	reports, _ := gridmap.GetMap[string, []byte](member, "reports")
	reports.Put(ctx, "bp-1", []byte(`{"product":"Firefox"}`))
	reports.Put(ctx, "bp-2", make([]byte, 4<<10)) // over the store's limit: rejected for good
	fmt.Println(reports.Flush(ctx))

	v, found, err := store.Load(ctx, []byte("bp-1"))
	fmt.Printf("%s %v %v\n", v, found, err)
	_, found, _ = store.Load(ctx, []byte("bp-2"))
	fmt.Println(found)
	v, err = reports.Get(ctx, "bp-2") // the map keeps the value in memory
	fmt.Println(len(v), err)
	// Output:
	// <nil>
	// {"product":"Firefox"} true <nil>
	// false
	// 4096 <nil>
}
