package transport

import "sync/atomic"

// Stats counts a member's traffic on its connections (see Config.Stats). Safe for concurrent
// use; the zero value is ready.
type Stats struct {
	bytesOut, bytesIn, framesIn atomic.Uint64
}

// StatsSnapshot is the value of a Stats at one moment.
type StatsSnapshot struct {
	// BytesOut counts the bytes of the frames written to connections; FramesIn and BytesIn
	// the frames read from them and their bytes.
	BytesOut, BytesIn, FramesIn uint64
}

// Snapshot returns the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{BytesOut: s.bytesOut.Load(), BytesIn: s.bytesIn.Load(), FramesIn: s.framesIn.Load()}
}

func (s *Stats) wrote(n int) {
	if s != nil && n > 0 {
		s.bytesOut.Add(uint64(n))
	}
}

func (s *Stats) read(f Frame) {
	if s != nil {
		s.framesIn.Add(1)
		s.bytesIn.Add(uint64(PrefixSize + len(f.Header) + len(f.Body)))
	}
}
