package minidump

import (
	"bytes"
	"fmt"
	"strconv"
)

// miscProcessID is MINIDUMP_MISC1_PROCESS_ID: the ProcessId field is valid.
const miscProcessID = 1

// MiscInfo is the part of MINIDUMP_MISC_INFO (and its longer versions) the processor uses.
type MiscInfo struct {
	HasProcessID bool
	ProcessID    uint32
	// ProcessCreateTime is the process start time in seconds since the Unix epoch, 0 if the
	// writer did not record it.
	ProcessCreateTime uint32
}

func readMiscInfo(b []byte) (*MiscInfo, error) {
	// SizeOfInfo, Flags1, ProcessId, ProcessCreateTime: the first 16 bytes of every version.
	if len(b) < 16 {
		return nil, fmt.Errorf("%w: %d bytes", ErrTruncated, len(b))
	}
	flags := le.Uint32(b[4:])
	m := &MiscInfo{HasProcessID: flags&miscProcessID != 0}
	if m.HasProcessID {
		m.ProcessID = le.Uint32(b[8:])
	}
	if flags&2 != 0 { // MINIDUMP_MISC1_PROCESS_TIMES
		m.ProcessCreateTime = le.Uint32(b[12:])
	}
	return m, nil
}

// readProcStatusPID finds the "Pid:" line in Breakpad's copy of /proc/<pid>/status; 0 if none.
func readProcStatusPID(b []byte) uint32 {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("Pid:"))
		if !ok {
			continue
		}
		pid, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 32)
		if err != nil {
			return 0
		}
		return uint32(pid)
	}
	return 0
}
