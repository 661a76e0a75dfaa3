package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// waitTakenOver waits until every partition's owner has taken it over at the current epoch, so
// that writes are served inline (a write arriving before the takeover goes the ordinary way,
// which sends values itself).
func waitTakenOver(t *testing.T, c *cluster) {
	t.Helper()
	tab := c.WaitStable()
	deadline := time.Now().Add(10 * time.Second)
	for p := range tab.Partitions {
		for c.Svcs[tab.Partitions[p].Replicas[0]].parts[p].ownEpoch.Load() != tab.Epoch {
			if time.Now().After(deadline) {
				t.Fatalf("partition %d not taken over at epoch %d", p, tab.Epoch)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// stashKeys writes, from every member of c, large values of its own keys: put, PutIfAbsent,
// Replace and ReplaceIfSame, each value distinct. It returns the final values and how many of
// the writes had a backup as their caller's member (those the stash may serve).
func stashKeys(t *testing.T, c *cluster, name string, size int) (want map[string]string, fromBackup int) {
	t.Helper()
	ctx := context.Background()
	want = map[string]string{}
	tab := c.Coord.Table
	for i := range len(c.Active) {
		s := c.Svc(i)
		m := mustMap[string, string](t, s, name)
		for j := range 12 {
			k := fmt.Sprintf("m%d-k%02d", i, j)
			p, err := m.Partition(k)
			if err != nil {
				t.Fatal(err)
			}
			val := func(round int) string {
				return strings.Repeat(fmt.Sprintf("%s/%d;", k, round), size/len(k))
			}
			steps := []func() error{
				func() error { return m.Put(ctx, k, val(1)) },
				func() error {
					if ok, err := m.PutIfAbsent(ctx, k, val(9)); err != nil || ok {
						return fmt.Errorf("PutIfAbsent on a present key = %v, %v", ok, err)
					}
					return nil
				},
				func() error {
					if ok, err := m.Replace(ctx, k, val(2)); err != nil || !ok {
						return fmt.Errorf("Replace = %v, %v", ok, err)
					}
					return nil
				},
				func() error {
					if ok, err := m.ReplaceIfSame(ctx, k, val(2), val(3)); err != nil || !ok {
						return fmt.Errorf("ReplaceIfSame = %v, %v", ok, err)
					}
					return nil
				},
			}
			for _, step := range steps {
				if err := step(); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
			}
			want[k] = val(3)
			if reps := tab.Partitions[p].Replicas; reps[0] != s.self && tab.IsReplica(p, s.self) {
				fromBackup += 3 // the writes that change the value
			}
		}
	}
	return want, fromBackup
}

// checkReplicas fails t unless every replica of every partition holds exactly want.
func checkReplicas(t *testing.T, c *cluster, name string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for p := range c.Svc(0).PartitionCount() {
		for k, v := range waitReplicasAgree(t, c, partition.ID(p), name) {
			got[k] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("replicas hold %d bytes for %s, want %d (%.40q...)", len(got[k]), k, len(v), v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("replicas hold %d keys, want %d", len(got), len(want))
	}
}

// TestBackupsFromTheCallersCopy: a large value written through a remote owner by a member that
// is one of the partition's backups reaches that backup from the member's own copy (the
// owner's backup message carries no value), and every replica ends up with exactly the values
// written; no copy outlives its write.
func TestBackupsFromTheCallersCopy(t *testing.T) {
	c := newCluster(t, 3, 2, nil)
	waitTakenOver(t, c)
	want, fromBackup := stashKeys(t, c, "stash", stashMin+100)
	if fromBackup == 0 {
		t.Fatal("no write came from a backup: the test does not exercise the stash")
	}
	var taken uint64
	for i := range len(c.Active) {
		taken += c.Svc(i).stash.taken.Load()
		if n := c.Svc(i).stash.len(); n != 0 {
			t.Errorf("member %d still holds %d copies", i, n)
		}
	}
	if taken != uint64(fromBackup) {
		t.Errorf("backups took %d values from their stash, want %d (one per value-changing write whose caller is a backup)", taken, fromBackup)
	}
	checkReplicas(t, c, "stash", want)

	// Values under stashMin travel as before.
	small, _ := stashKeys(t, c, "small", stashMin/2)
	for i := range len(c.Active) {
		taken -= c.Svc(i).stash.taken.Load()
	}
	if taken != 0 {
		t.Errorf("%d small values were taken from a stash", -int64(taken))
	}
	checkReplicas(t, c, "small", small)
}

// TestBackupsFromTheCallersCopyResentWhenLost: when the backup no longer holds the copy its
// owner names (its caller gave up waiting), it refuses the backup and the owner sends the value
// itself: the write succeeds and every replica holds it.
func TestBackupsFromTheCallersCopyResentWhenLost(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	for i := range len(c.Active) {
		c.Svc(i).stash.lose.Store(true)
	}
	want, fromBackup := stashKeys(t, c, "lost", stashMin)
	if fromBackup == 0 {
		t.Fatal("no write came from a backup: the test does not exercise the stash")
	}
	for i := range len(c.Active) {
		if n := c.Svc(i).stash.len(); n != 0 {
			t.Errorf("member %d still holds %d copies", i, n)
		}
		if n := c.Svc(i).stash.taken.Load(); n != 0 {
			t.Errorf("member %d took %d copies it was told to lose", i, n)
		}
	}
	checkReplicas(t, c, "lost", want)
}

// TestBackupRefusesUnheldOrMisusedCopies: a backup message naming a copy this member does not
// hold, or naming one and carrying a value, or a copy message naming one, changes nothing and
// is refused.
func TestBackupRefusesUnheldOrMisusedCopies(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	tab := c.Coord.Table
	owner, backup := tab.Partitions[0].Replicas[0], tab.Partitions[0].Replicas[1]
	s := c.Svcs[backup]
	held := s.stash.put([]byte("k"), []byte("held value"))
	for name, tc := range map[string]struct {
		mut    mutation
		msg    transport.MsgType
		status status
	}{
		"unknown copy":       {mutation{Map: "m", Kind: mutSet, Key: []byte("k"), Seq: 1, Stash: held + 1}, msgBackup, statusFailed},
		"another key's copy": {mutation{Map: "m", Kind: mutSet, Key: []byte("other"), Seq: 1, Stash: held}, msgBackup, statusFailed},
		"copy and a value":   {mutation{Map: "m", Kind: mutSet, Key: []byte("k"), Seq: 1, Stash: held, Value: []byte("v")}, msgBackup, statusBadRequest},
		"copy in a delete":   {mutation{Map: "m", Kind: mutDelete, Key: []byte("k"), Seq: 1, Stash: held}, msgBackup, statusBadRequest},
	} {
		header, body, err := encodeBatch(0, tab.Epoch, string(owner), []mutation{tc.mut})
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.handleBackup(context.Background(), transport.Message{Type: tc.msg, Header: header, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := decodeResponse(out)
		if err != nil || resp.Status != tc.status {
			t.Errorf("%s: answer %+v, %v; want status %d", name, resp, err, tc.status)
		}
	}
	header, body, err := encodeBatch(0, tab.Epoch, string(owner),
		[]mutation{{Map: "m", Kind: mutSet, Key: []byte("k"), Seq: 1, Stash: held}})
	if err != nil {
		t.Fatal(err)
	}
	if resp := s.applyBatch(transport.Message{Header: header, Body: body}, func(*part, *batchHeader) {
		t.Error("a copy batch naming a held value was applied")
	}); resp.Status != statusBadRequest {
		t.Errorf("copy batch naming a held value: %+v", resp)
	}
	if got := replicaContents(c, backup, 0, "m"); len(got) != 0 {
		t.Errorf("refused batches changed the replica: %v", got)
	}
	if s.stash.len() != 1 {
		t.Error("a refused batch used up the copy")
	}
}
