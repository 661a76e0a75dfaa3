package engine

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Operation statistics: what this member's callers asked of each map, by class, with their
// latency as the caller saw it (routing, retries and the owner's answer included). They are
// plain atomic counters updated once per operation, striped by partition so that callers on
// different cores rarely touch the same cache line; metrics read them at scrape time.

// OpClass groups operation kinds for statistics.
type OpClass uint8

// Operation classes, in the order of OpClassNames.
const (
	ClassGet OpClass = iota
	ClassContains
	ClassPut
	ClassPutIfAbsent
	ClassReplace
	ClassDelete
	ClassLock
	ClassExecute
	ClassOther // size, scans, clear, flush, execute-on-all
	NumOpClasses
)

// OpClassNames names the classes (metric labels, JSON keys).
var OpClassNames = [NumOpClasses]string{"get", "contains", "put", "put_if_absent", "replace", "delete", "lock", "execute", "other"}

func classOf(k opKind) OpClass {
	switch k {
	case opGet:
		return ClassGet
	case opContains:
		return ClassContains
	case opPut:
		return ClassPut
	case opPutIfAbsent:
		return ClassPutIfAbsent
	case opReplace, opReplaceIfSame:
		return ClassReplace
	case opDelete:
		return ClassDelete
	case opLock, opTryLock, opUnlock, opIsLocked:
		return ClassLock
	case opExecute:
		return ClassExecute
	}
	return ClassOther
}

// LatencyBuckets is the number of latency buckets: bucket i counts operations that took less
// than 2^i microseconds (bucket 0: under 1µs); slower ones are only in the total count.
const LatencyBuckets = 24

// LatencyBound returns the upper bound of latency bucket i.
func LatencyBound(i int) time.Duration { return time.Duration(1<<i) * time.Microsecond }

const opStripes = 8 // a power of two

// opStripe is one stripe of a map's counters, padded to keep stripes off each other's lines.
type opStripe struct {
	ops    [NumOpClasses]atomic.Uint64
	errs   [NumOpClasses]atomic.Uint64
	lat    [NumOpClasses][LatencyBuckets]atomic.Uint64
	timed  [NumOpClasses]atomic.Uint64 // operations timed (one in latencySample)
	latSum [NumOpClasses]atomic.Uint64 // nanoseconds
	_      [64]byte
}

// mapOps holds one map's operation counters on this member (shared by every handle on it).
type mapOps struct {
	stripes [opStripes]opStripe
}

// latencySample: one operation in latencySample of each class and stripe is timed, since
// reading the clock twice per operation would cost several times what counting it does (one
// atomic add); docs/performance.md has the figures.
const latencySample = 16

// begin counts one operation of kind k on partition p and reports its stripe, its class, and
// whether to time it (then end records the time).
func (o *mapOps) begin(p int32, k opKind) (st *opStripe, c OpClass, timed bool) {
	st = &o.stripes[uint32(p)&(opStripes-1)]
	c = classOf(k)
	return st, c, st.ops[c].Add(1)%latencySample == 0
}

// end records a timed operation of class c that took d and failed if failed.
func (st *opStripe) end(c OpClass, d time.Duration, failed bool) {
	if failed {
		st.errs[c].Add(1)
	}
	if d < 0 {
		d = 0
	}
	if b := bits.Len64(uint64(d / time.Microsecond)); b < LatencyBuckets {
		st.lat[c][b].Add(1)
	}
	st.timed[c].Add(1)
	st.latSum[c].Add(uint64(d))
}

// OpStats are a map's operation counters of one class on this member, since it started.
type OpStats struct {
	// Ops counts the operations run by this member's callers, failed ones included; Errors
	// counts the failed ones (an error returned to the caller).
	Ops, Errors uint64
	// Timed counts the operations whose latency was measured: one in 16 of each class,
	// a sample, since reading the clock would cost more than counting. Latency[i] counts the
	// timed operations that took less than LatencyBound(i) but not less than
	// LatencyBound(i-1) (not cumulative); LatencySum is their total time.
	Timed      uint64
	Latency    [LatencyBuckets]uint64
	LatencySum time.Duration
}

func (o *mapOps) snapshot() [NumOpClasses]OpStats {
	var out [NumOpClasses]OpStats
	for i := range o.stripes {
		st := &o.stripes[i]
		for c := range out {
			out[c].Ops += st.ops[c].Load()
			out[c].Errors += st.errs[c].Load()
			out[c].Timed += st.timed[c].Load()
			out[c].LatencySum += time.Duration(st.latSum[c].Load())
			for b := range out[c].Latency {
				out[c].Latency[b] += st.lat[c][b].Load()
			}
		}
	}
	return out
}

// opRegistry holds the counters of every map this member opened, by name.
type opRegistry struct {
	m sync.Map // map name -> *mapOps
}

func (r *opRegistry) of(name string) *mapOps {
	if v, ok := r.m.Load(name); ok {
		return v.(*mapOps)
	}
	v, _ := r.m.LoadOrStore(name, new(mapOps))
	return v.(*mapOps)
}

// OpStats returns, for every map this member opened, its operation counters by class (indexed
// by OpClass).
func (s *Service) OpStats() map[string][NumOpClasses]OpStats {
	out := map[string][NumOpClasses]OpStats{}
	s.ops.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*mapOps).snapshot()
		return true
	})
	return out
}

// TotalOps returns the number of operations this member's callers ran on every map: the cheap
// figure a throughput chart samples.
func (s *Service) TotalOps() uint64 {
	var n uint64
	s.ops.m.Range(func(_, v any) bool {
		o := v.(*mapOps)
		for i := range o.stripes {
			for c := range o.stripes[i].ops {
				n += o.stripes[i].ops[c].Load()
			}
		}
		return true
	})
	return n
}
