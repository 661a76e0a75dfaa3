package pebblestore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func open(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// value returns deterministic pseudo-random bytes of size n for seed.
func value(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func blobFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestRoundTripSizes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, Options{})
	sizes := []int{0, 100, 1000, DefaultBlobThreshold - 1, DefaultBlobThreshold, 1 << 20, 20 << 20}
	for i, n := range sizes {
		k := fmt.Appendf(nil, "k%d", i)
		if err := s.Store(ctx, k, value(uint64(i), n)); err != nil {
			t.Fatalf("store %d bytes: %v", n, err)
		}
	}
	check := func(s *Store) {
		t.Helper()
		for i, n := range sizes {
			v, ok, err := s.Load(ctx, fmt.Appendf(nil, "k%d", i))
			if err != nil || !ok || !bytes.Equal(v, value(uint64(i), n)) {
				t.Fatalf("load %d bytes: found %v, err %v, %d bytes back", n, ok, err, len(v))
			}
		}
	}
	check(s)
	if n := blobFiles(t, dir); n != 3 {
		t.Fatalf("%d blob files, want 3 (values >= %d bytes)", n, DefaultBlobThreshold)
	}
	// overwriting and deleting a large value removes its blob file
	if err := s.Store(ctx, []byte("k6"), value(6, 20<<20)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAll(ctx, [][]byte{[]byte("k5"), []byte("never-stored")}); err != nil {
		t.Fatal(err)
	}
	if n := blobFiles(t, dir); n != 2 {
		t.Fatalf("%d blob files after overwrite and delete, want 2", n)
	}
	if _, ok, err := s.Load(ctx, []byte("k5")); ok || err != nil {
		t.Fatalf("deleted key: found %v, err %v", ok, err)
	}
	sizes = sizes[:5]
	s.Close()
	check(open(t, dir, Options{}))
}

func TestInlineOnlyAndNoSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, Options{BlobThreshold: -1, NoSync: true})
	keys := [][]byte{[]byte("a"), []byte("b")}
	vals := [][]byte{value(1, 20<<20), value(2, 300)}
	if err := s.StoreAll(ctx, keys, vals); err != nil {
		t.Fatal(err)
	}
	if n := blobFiles(t, dir); n != 0 {
		t.Fatalf("%d blob files with BlobThreshold -1", n)
	}
	got := map[string][]byte{}
	err := s.LoadAll(ctx, append(keys, []byte("c")), func(k, v []byte) error { got[string(k)] = v; return nil })
	if err != nil || len(got) != 2 || !bytes.Equal(got["a"], vals[0]) || !bytes.Equal(got["b"], vals[1]) {
		t.Fatalf("LoadAll: %d values, err %v", len(got), err)
	}
	var listed []string
	if err := s.LoadAllKeys(ctx, func(k []byte) error { listed = append(listed, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(listed) != "[a b]" {
		t.Fatalf("keys %v", listed)
	}
}

func TestOrphanBlobsAreCollectedAndCorruptionDetected(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if err := s.Store(ctx, []byte("big"), value(7, 1<<20)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// a crash between writing a blob and committing its reference leaves an orphan
	orphan := filepath.Join(dir, "blobs", fmt.Sprintf("%016x", 999))
	if err := os.WriteFile(orphan, []byte("half written"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan blob survived Open: %v", err)
	}
	if err := s.Store(ctx, []byte("next"), value(8, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", fmt.Sprintf("%016x", 1000))); err != nil {
		t.Fatalf("blob ids do not continue after the highest seen: %v", err)
	}
	// a damaged blob is reported, not returned
	if err := os.Truncate(filepath.Join(dir, "blobs", fmt.Sprintf("%016x", 1000)), 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx, []byte("next")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("load of a truncated blob: %v", err)
	}
	s.Close()
	if err := s.Store(ctx, []byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("store after close: %v", err)
	}
}

// Crash test: a child process writes batches and reports each acknowledged one on stdout; it is
// killed with SIGKILL; the reopened store holds every acknowledged entry (or a later write of
// the same key).
const crashEnv = "PEBBLESTORE_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

const crashKeys = 40

// crashValue is the value of the i-th write: its number, then deterministic bytes; sizes cross
// the blob threshold.
func crashValue(i int) []byte {
	n := []int{100, 5000, 70_000, 300_000}[i%4]
	v := value(uint64(i), n)
	binary.BigEndian.PutUint64(v, uint64(i))
	return v
}

func crashChild(dir string) {
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	start, _ := strconv.Atoi(os.Getenv("PEBBLESTORE_CRASH_START"))
	for i := start; ; i += 5 {
		var keys, vals [][]byte
		for j := i; j < i+5; j++ {
			keys = append(keys, fmt.Appendf(nil, "k%d", j%crashKeys))
			vals = append(vals, crashValue(j))
		}
		if err := s.StoreAll(context.Background(), keys, vals); err != nil {
			fmt.Fprintln(out, "error", err)
			out.Flush()
			os.Exit(2)
		}
		fmt.Fprintln(out, "ack", i)
		out.Flush()
	}
}

func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	last := map[string]int{} // key -> highest acknowledged write number
	next := 0
	for round := range crashRounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, "PEBBLESTORE_CRASH_START="+strconv.Itoa(next))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		acks := 0
		want := 10 + 7*round // kill at a different moment each round
		for acks < want && sc.Scan() {
			var i int
			if _, err := fmt.Sscanf(sc.Text(), "ack %d", &i); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child: %s", sc.Text())
			}
			for j := i; j < i+5; j++ {
				last[fmt.Sprintf("k%d", j%crashKeys)] = j
			}
			next = i + 5
			acks++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if acks < want {
			t.Fatalf("round %d: child stopped after %d acknowledgements", round, acks)
		}
		next += 1000 // skip whatever the child may have written unacknowledged

		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		for k, i := range last {
			v, ok, err := s.Load(context.Background(), []byte(k))
			if err != nil || !ok {
				t.Fatalf("round %d: %s (acknowledged write %d): found %v, err %v", round, k, i, ok, err)
			}
			got := int(binary.BigEndian.Uint64(v))
			if got < i || !bytes.Equal(v, crashValue(got)) {
				t.Fatalf("round %d: %s holds write %d (%d bytes), acknowledged %d", round, k, got, len(v), i)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
