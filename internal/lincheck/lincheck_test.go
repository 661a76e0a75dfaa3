package lincheck

import (
	"maps"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Histories are written as a script: each line is one operation of client C on key "k", called
// at Call and returned at Return (milliseconds).
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func put(c, call, ret int, v string) Op {
	return Op{Client: c, Key: "k", Kind: Put, Value: v, Call: ms(call), Return: ms(ret)}
}
func get(c, call, ret int, v string) Op {
	return Op{Client: c, Key: "k", Kind: Get, OK: true, Got: v, Call: ms(call), Return: ms(ret)}
}
func getMissing(c, call, ret int) Op {
	return Op{Client: c, Key: "k", Kind: Get, Call: ms(call), Return: ms(ret)}
}
func cas(c, call, ret int, old, v string, swapped bool) Op {
	return Op{Client: c, Key: "k", Kind: CAS, Old: old, Value: v, OK: swapped, Call: ms(call), Return: ms(ret)}
}
func del(c, call, ret int, existed bool) Op {
	return Op{Client: c, Key: "k", Kind: Delete, OK: existed, Call: ms(call), Return: ms(ret)}
}
func failed(o Op) Op { o.Err, o.OK, o.Got = true, false, ""; return o }

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"empty key reads as missing", []Op{getMissing(0, 0, 1)}, porcupine.Ok},
		{"sequential put then get", []Op{put(0, 0, 1, "a"), get(1, 2, 3, "a")}, porcupine.Ok},
		{"concurrent reads see old or new", []Op{
			put(0, 0, 1, "a"),
			put(0, 10, 20, "b"),
			get(1, 11, 12, "a"),
			get(2, 13, 14, "b"),
		}, porcupine.Ok},
		{"stale read after a newer read", []Op{
			put(0, 0, 1, "a"),
			put(0, 10, 20, "b"),
			get(1, 11, 12, "b"),
			get(2, 13, 14, "a"), // b was already visible: a is stale
		}, porcupine.Illegal},
		{"stale read after the put returned", []Op{
			put(0, 0, 1, "a"),
			put(0, 2, 3, "b"),
			get(1, 4, 5, "a"),
		}, porcupine.Illegal},
		{"acknowledged put lost", []Op{
			put(0, 0, 1, "a"),
			getMissing(1, 2, 3),
		}, porcupine.Illegal},
		{"read of a value never written", []Op{get(0, 0, 1, "x")}, porcupine.Illegal},
		{"cas swaps the current value", []Op{
			put(0, 0, 1, "a"),
			cas(1, 2, 3, "a", "b", true),
			get(2, 4, 5, "b"),
		}, porcupine.Ok},
		{"cas that reports a swap it could not make", []Op{
			put(0, 0, 1, "a"),
			cas(1, 2, 3, "x", "b", true),
		}, porcupine.Illegal},
		{"cas that reports no swap though it matched", []Op{
			put(0, 0, 1, "a"),
			cas(1, 2, 3, "a", "b", false),
		}, porcupine.Illegal},
		{"cas on an absent key does not swap", []Op{
			cas(1, 0, 1, "", "b", false),
			getMissing(0, 2, 3),
		}, porcupine.Ok},
		{"two cas from the same value: only one wins", []Op{
			put(0, 0, 1, "a"),
			cas(1, 2, 10, "a", "b", true),
			cas(2, 3, 11, "a", "c", true),
		}, porcupine.Illegal},
		{"delete reports what it removed", []Op{
			put(0, 0, 1, "a"),
			del(1, 2, 3, true),
			getMissing(2, 4, 5),
			del(1, 6, 7, false),
		}, porcupine.Ok},
		{"delete of an absent key that claims an entry", []Op{del(0, 0, 1, true)}, porcupine.Illegal},

		// An errored write's outcome is unknown: it may take effect at any time after its call.
		{"errored put took effect", []Op{
			put(0, 0, 1, "a"),
			failed(put(1, 2, 3, "b")),
			get(2, 10, 11, "b"),
		}, porcupine.Ok},
		{"errored put did not take effect", []Op{
			put(0, 0, 1, "a"),
			failed(put(1, 2, 3, "b")),
			get(2, 10, 11, "a"),
		}, porcupine.Ok},
		{"errored put takes effect after its caller gave up", []Op{
			put(0, 0, 1, "a"),
			failed(put(1, 2, 3, "b")),
			get(2, 10, 11, "a"),
			get(2, 20, 21, "b"),
		}, porcupine.Ok},
		{"errored put cannot take effect before its call", []Op{
			put(0, 0, 1, "a"),
			get(2, 2, 3, "b"),
			failed(put(1, 10, 11, "b")),
		}, porcupine.Illegal},
		{"errored put does not excuse a lost acknowledged one", []Op{
			failed(put(1, 0, 1, "b")),
			put(0, 2, 3, "a"),
			getMissing(2, 10, 11),
		}, porcupine.Illegal},
		{"errored delete may explain a missing key", []Op{
			put(0, 0, 1, "a"),
			failed(del(1, 2, 3, false)),
			getMissing(2, 10, 11),
		}, porcupine.Ok},
		{"errored cas swapped", []Op{
			put(0, 0, 1, "a"),
			failed(cas(1, 2, 3, "a", "b", false)),
			get(2, 10, 11, "b"),
		}, porcupine.Ok},
		{"errored cas cannot swap from a value that was not there", []Op{
			put(0, 0, 1, "a"),
			failed(cas(1, 2, 3, "x", "b", false)),
			get(2, 10, 11, "b"),
		}, porcupine.Illegal},
		{"errored read says nothing", []Op{
			put(0, 0, 1, "a"),
			failed(get(1, 2, 3, "zzz")),
		}, porcupine.Ok},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Check(tc.ops, 10*time.Second)
			if len(res) != 1 || res[0].Key != "k" {
				t.Fatalf("results %+v", res)
			}
			if res[0].Result != tc.want {
				for _, o := range tc.ops {
					t.Log(o)
				}
				t.Fatalf("got %s, want %s", res[0].Result, tc.want)
			}
		})
	}
}

// Keys are checked independently: a violation on one key names that key only.
func TestCheckPerKey(t *testing.T) {
	ops := []Op{
		put(0, 0, 1, "a"), get(1, 2, 3, "a"),
		{Client: 0, Key: "j", Kind: Put, Value: "x", Call: ms(0), Return: ms(1)},
		{Client: 1, Key: "j", Kind: Get, Call: ms(2), Return: ms(3)}, // lost
	}
	res := Check(ops, 10*time.Second)
	if len(res) != 2 || res[0].Key != "j" || res[0].Result != porcupine.Illegal || res[1].Key != "k" || res[1].Result != porcupine.Ok {
		t.Fatalf("results %+v", res)
	}
	if err := res[0].Visualize(t.TempDir() + "/j.html"); err != nil {
		t.Fatal(err)
	}
}

func TestWaits(t *testing.T) {
	ops := []Op{
		put(0, 0, 10, "a"),
		failed(put(0, 20, 30, "b")), // waits from 20 until the get returns at 50
		get(1, 25, 50, "a"),
		failed(put(0, 60, 70, "c")), // nothing after it: waits until the end of the window
		{Client: 0, Key: "idle", Kind: Get, Err: true, Call: ms(0), Return: ms(10)},
	}
	want := map[string]time.Duration{"k": ms(60), "idle": ms(120)}
	if got := Waits(ops, 0, ms(120)); !maps.Equal(got, want) {
		t.Fatalf("all kinds: %v, want %v", got, want)
	}
	// Writes only: no write succeeded after the one at 10 ms.
	want = map[string]time.Duration{"k": ms(100)}
	if got := Waits(ops, 0, ms(120), Put, CAS, Delete); !maps.Equal(got, want) {
		t.Fatalf("writes: %v, want %v", got, want)
	}
	// A window that starts later: the put called at 20 is outside it.
	want = map[string]time.Duration{"k": ms(60)}
	if got := Waits(ops, ms(50), ms(120)); !maps.Equal(got, want) {
		t.Fatalf("window: %v, want %v", got, want)
	}
}
