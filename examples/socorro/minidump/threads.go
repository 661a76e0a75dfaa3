package minidump

import "fmt"

const threadSize = 48

// Thread is one MINIDUMP_THREAD of the thread list.
type Thread struct {
	ID uint32
	// StackStart is the lowest address of the stack memory the dump saved for this thread.
	StackStart uint64
	StackSize  uint32
	context    location
}

func readThreads(b []byte) ([]Thread, error) {
	n, entries, err := listCount(b, threadSize)
	if err != nil {
		return nil, err
	}
	ts := make([]Thread, n)
	for i := range ts {
		e := entries[i*threadSize:]
		// ThreadId, SuspendCount, PriorityClass, Priority, Teb (u64), Stack (u64 start +
		// location) at 24, ThreadContext location at 40.
		ts[i] = Thread{
			ID:         le.Uint32(e),
			StackStart: le.Uint64(e[24:]),
			StackSize:  le.Uint32(e[32:]),
			context:    readLocation(e[40:]),
		}
	}
	return ts, nil
}

// threadIndex returns the index in the thread list of the thread with the given ID, or -1.
func (d *Dump) threadIndex(id uint32) int {
	for i, t := range d.Threads {
		if t.ID == id {
			return i
		}
	}
	return -1
}

func errNoThread(id uint32) error {
	return fmt.Errorf("%w: thread %#x is not in the thread list", ErrMalformed, id)
}
