package engine

import "testing"

// A partition copy races live replication: the copy's entries may arrive after newer writes and
// deletes of the same keys. These scenarios check that the newest state always wins.
func TestCopyNeverResurrectsOrRegresses(t *testing.T) {
	set := func(key, val string, seq uint64) mutation {
		return mutation{Map: "m", Kind: mutSet, Key: []byte(key), Value: []byte(val), Seq: seq}
	}
	del := func(key string, seq uint64) mutation {
		return mutation{Map: "m", Kind: mutDelete, Key: []byte(key), Seq: seq}
	}
	clear := func(seq uint64) mutation { return mutation{Map: "m", Kind: mutClear, Seq: seq} }
	tests := []struct {
		name string
		live []mutation // replicated during the copy
		copy []mutation // the copy's entries, arriving afterwards
		want map[string]string
	}{
		{"copy fills an empty store", nil, []mutation{set("a", "1", 1), set("b", "2", 2)}, map[string]string{"a": "1", "b": "2"}},
		{"newer live write wins over older copy", []mutation{set("a", "new", 5)}, []mutation{set("a", "old", 3)}, map[string]string{"a": "new"}},
		{"live delete is not undone by the copy", []mutation{del("a", 5)}, []mutation{set("a", "old", 3)}, map[string]string{}},
		{"live clear is not undone by the copy", []mutation{clear(5)}, []mutation{set("a", "old", 3), set("b", "x", 4)}, map[string]string{}},
		{"write after clear survives", []mutation{clear(5), set("b", "y", 6)}, []mutation{set("a", "old", 3)}, map[string]string{"b": "y"}},
		{"copy newer than delete applies", []mutation{del("a", 2)}, []mutation{set("a", "v", 3)}, map[string]string{"a": "v"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := newRecordStore()
			rs.apply(set("stale", "from before the copy", 1))
			rs.beginSync()
			for _, m := range tc.live {
				rs.apply(m)
			}
			for _, m := range tc.copy {
				rs.apply(m)
			}
			rs.endSync()
			got := map[string]string{}
			for r := range rs.all("m") {
				got[r.key] = string(r.value)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestBackupAppliesInOrderAndIgnoresReplays(t *testing.T) {
	rs := newRecordStore()
	rs.apply(mutation{Map: "m", Kind: mutSet, Key: []byte("k"), Value: []byte("1"), Seq: 1})
	rs.apply(mutation{Map: "m", Kind: mutSet, Key: []byte("k"), Value: []byte("2"), Seq: 2})
	if rs.apply(mutation{Map: "m", Kind: mutSet, Key: []byte("k"), Value: []byte("1"), Seq: 1}) {
		t.Fatal("a replayed older mutation was applied")
	}
	if got := string(rs.get("m", "k", 0).value); got != "2" {
		t.Fatalf("value = %s", got)
	}
	if rs.seq != 2 {
		t.Fatalf("seq = %d", rs.seq)
	}
}
