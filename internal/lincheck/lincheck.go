// Package lincheck checks histories of operations on a key-value map for linearizability, one
// key at a time, with the porcupine checker and a register model of one key: get, put,
// compare-and-set (ReplaceIfSame) and delete. The fault tests of package gridmap record such
// histories from member processes that are killed while clients run; this package is the plain
// logic they hand the history to, with no processes, sockets or clocks of its own.
//
// An operation that returned an error has an unknown outcome: a write may or may not have taken
// effect, and that may become visible at any time after it was called (the member may apply it
// after the caller gave up). Check models it the way porcupine's documentation prescribes for
// timed-out operations: its return time is infinite and its output accepts either outcome, so
// the checker may place it anywhere after its call, including after every other operation (which
// is the same as "never happened"). An errored read says nothing and is left out.
package lincheck

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is the kind of an operation on one key.
type Kind uint8

// The operations of the register model.
const (
	// Get reads the key: OK reports whether it had a value, Got is the value.
	Get Kind = iota + 1
	// Put writes Value unconditionally.
	Put
	// CAS writes Value only if the key's current value is Old; OK reports whether it did. An
	// absent key never matches.
	CAS
	// Delete removes the key; OK reports whether it had a value.
	Delete
)

func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case CAS:
		return "cas"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Op is one operation of a history: what a client asked, when, and what it was told. Times are
// on one monotonic clock of the process that recorded the history (Call <= Return).
type Op struct {
	Client int
	Key    string
	Kind   Kind
	Value  string // Put, CAS: the value written
	Old    string // CAS: the value expected
	Call   time.Duration
	Return time.Duration
	// Err: the operation returned an error, so its outcome is unknown. OK and Got are then
	// meaningless.
	Err bool
	OK  bool   // Get: found; CAS: swapped; Delete: had a value
	Got string // Get: the value read when OK
}

func (o Op) String() string {
	in := o.Kind.String() + "(" + o.Key
	switch o.Kind {
	case Put:
		in += ", " + o.Value
	case CAS:
		in += ", " + o.Old + " -> " + o.Value
	}
	in += ")"
	switch {
	case o.Err:
		return in + " -> error (unknown)"
	case o.Kind == Get && o.OK:
		return in + " -> " + o.Got
	case o.Kind == Get:
		return in + " -> not found"
	case o.Kind == Put:
		return in + " -> ok"
	}
	return fmt.Sprintf("%s -> %v", in, o.OK)
}

// state is the register of one key.
type state struct {
	present bool
	value   string
}

// input and output are what porcupine passes to the model.
type input struct {
	kind       Kind
	value, old string
}

type output struct {
	unknown bool
	ok      bool
	got     string
}

// Model returns the porcupine model of one key. Its states, inputs and outputs are this
// package's own types: build histories with Operations.
func Model() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return state{} },
		Step: func(st, in, out any) (bool, any) {
			return step(st.(state), in.(input), out.(output))
		},
		Hash: func(st any) uint64 {
			s := st.(state)
			var h uint64 = 14695981039346656037 // FNV-1a
			for i := 0; i < len(s.value); i++ {
				h = (h ^ uint64(s.value[i])) * 1099511628211
			}
			if s.present {
				h ^= 1
			}
			return h
		},
		DescribeOperation: func(in, out any) string {
			i, o := in.(input), out.(output)
			op := Op{Kind: i.kind, Value: i.value, Old: i.old, Err: o.unknown, OK: o.ok, Got: o.got}
			return op.String()
		},
		DescribeState: func(st any) string {
			if s := st.(state); s.present {
				return s.value
			}
			return "(absent)"
		},
	}
}

// step is the sequential specification of one key.
func step(s state, in input, out output) (bool, state) {
	switch in.kind {
	case Get:
		if out.unknown {
			return true, s
		}
		return out.ok == s.present && (!s.present || out.got == s.value), s
	case Put:
		return true, state{present: true, value: in.value}
	case CAS:
		match := s.present && s.value == in.old
		next := s
		if match {
			next = state{present: true, value: in.value}
		}
		return out.unknown || out.ok == match, next
	case Delete:
		return out.unknown || out.ok == s.present, state{}
	}
	return false, s
}

// Operations converts ops of one key into porcupine operations: an errored read is dropped, an
// errored write returns at infinity with an output that accepts either outcome.
func Operations(ops []Op) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		if o.Err && o.Kind == Get {
			continue
		}
		ret := int64(o.Return)
		if o.Err {
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{
			ClientId: o.Client,
			Input:    input{kind: o.Kind, value: o.Value, old: o.Old},
			Call:     int64(o.Call),
			Output:   output{unknown: o.Err, ok: o.OK, got: o.Got},
			Return:   ret,
		})
	}
	return out
}

// KeyResult is the verdict on one key's history.
type KeyResult struct {
	Key    string
	Result porcupine.CheckResult // Ok, Illegal, or Unknown (the check ran out of time)
	Ops    int
	info   porcupine.LinearizationInfo
	ops    []porcupine.Operation
}

// Check checks the history of every key on its own (a map is linearizable if and only if each of
// its keys is) and returns the verdicts sorted by key. timeout bounds the whole check (0: none):
// each key gets an equal share of the time left, so that one hard key cannot starve the others;
// then the keys not decided in their share share whatever time the others left, once more.
// Keys still not decided are Unknown.
func Check(ops []Op, timeout time.Duration) []KeyResult {
	byKey := map[string][]Op{}
	for _, o := range ops {
		byKey[o.Key] = append(byKey[o.Key], o)
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	keys := slices.Sorted(maps.Keys(byKey))
	results := checkKeys(byKey, keys, deadline)
	if !deadline.IsZero() {
		// Most keys take milliseconds: a key that ran out of its share gets the time they left.
		var again []string
		for _, r := range results {
			if r.Result == porcupine.Unknown {
				again = append(again, r.Key)
			}
		}
		if len(again) > 0 && time.Until(deadline) > 0 {
			second := checkKeys(byKey, again, deadline)
			for _, r := range second {
				i := slices.IndexFunc(results, func(k KeyResult) bool { return k.Key == r.Key })
				results[i] = r
			}
		}
	}
	slices.SortFunc(results, func(a, b KeyResult) int { return cmp.Compare(a.Key, b.Key) })
	return results
}

// checkKeys checks keys one after another, each within an equal share of the time left until
// deadline (zero: no bound).
func checkKeys(byKey map[string][]Op, keys []string, deadline time.Time) []KeyResult {
	model := Model()
	results := make([]KeyResult, 0, len(keys))
	for i, key := range keys {
		kops := byKey[key]
		left := time.Duration(0)
		if !deadline.IsZero() {
			if left = time.Until(deadline) / time.Duration(len(keys)-i); left <= 0 {
				results = append(results, KeyResult{Key: key, Result: porcupine.Unknown, Ops: len(kops)})
				continue
			}
		}
		pops := Operations(kops)
		res, info := porcupine.CheckOperationsVerbose(model, pops, left)
		results = append(results, KeyResult{Key: key, Result: res, Ops: len(kops), info: info, ops: pops})
	}
	return results
}

// Visualize writes porcupine's HTML visualization of the key's history and its longest
// linearizations to path.
func (r KeyResult) Visualize(path string) error {
	return porcupine.VisualizePath(Model(), r.info, path)
}

// Waits returns, per key, the longest time an operation called within [from, to] waited for the
// key to be served: from its call to the first successful return, at or after that call, of an
// operation on the same key (its own or another client's; a CAS that did not swap is a success,
// an error is not), or to `to` if none came. Only operations of the given kinds count, as
// callers and as successes; none given means every kind. Keys no operation was called on in
// the window are absent. Unlike the gaps between successes, a wait measures the key, not the
// clients: a key nobody asked for is not counted as unavailable.
func Waits(ops []Op, from, to time.Duration, kinds ...Kind) map[string]time.Duration {
	counts := func(o Op) bool { return len(kinds) == 0 || slices.Contains(kinds, o.Kind) }
	served := map[string][]time.Duration{}
	for _, o := range ops {
		if !o.Err && counts(o) {
			served[o.Key] = append(served[o.Key], o.Return)
		}
	}
	for _, s := range served {
		slices.Sort(s)
	}
	waits := map[string]time.Duration{}
	for _, o := range ops {
		if o.Call < from || o.Call > to || !counts(o) {
			continue
		}
		end := to
		s := served[o.Key]
		if i, _ := slices.BinarySearch(s, o.Call); i < len(s) {
			end = s[i]
		}
		waits[o.Key] = max(waits[o.Key], end-o.Call)
	}
	return waits
}
