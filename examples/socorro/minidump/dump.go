package minidump

import (
	"fmt"
	"time"
)

// Stream types the reader knows (MINIDUMP_STREAM_TYPE, and the Breakpad and Crashpad ones).
const (
	StreamThreadList      uint32 = 3
	StreamModuleList      uint32 = 4
	StreamMemoryList      uint32 = 5
	StreamException       uint32 = 6
	StreamSystemInfo      uint32 = 7
	StreamMiscInfo        uint32 = 15
	StreamBreakpadInfo    uint32 = 0x47670001
	StreamLinuxCPUInfo    uint32 = 0x47670003
	StreamLinuxProcStatus uint32 = 0x47670004
	StreamLinuxLSBRelease uint32 = 0x47670005
	StreamCrashpadInfo    uint32 = 0x43500001
)

const (
	headerSize                = 32
	directoryEntrySize        = 12
	signature          uint32 = 0x504d444d // "MDMP" read as a little-endian 32-bit word
	formatVersion      uint32 = 0xa793     // low 16 bits of Version
	maxStreams                = 4096       // a dump has a dozen or two; a bound on a corrupt count
	unusedStream       uint32 = 0          // UnusedStream: a directory slot the writer left empty
)

// Header is the MINIDUMP_HEADER.
type Header struct {
	// Version is the format version: its low 16 bits are always 0xa793, the high 16 bits are
	// the writer's own.
	Version uint32
	// Streams is the number of stream directory entries.
	Streams uint32
	// Time is when the dump was written (TimeDateStamp, seconds since the Unix epoch).
	Time time.Time
	// Flags are the MINIDUMP_TYPE flags the writer used.
	Flags uint64
}

// Stream is one stream directory entry.
type Stream struct {
	Type uint32
	Size uint32
	RVA  uint32
}

// Dump is what the reader recovered from one minidump. A stream that is missing leaves its field
// nil or empty; a stream that is present but unreadable does too, and adds a note to Notes.
type Dump struct {
	Header    Header
	Directory []Stream

	System    *SystemInfo
	Exception *Exception
	Threads   []Thread
	Modules   []Module
	Misc      *MiscInfo
	// LinuxPID is the process ID from Breakpad's Linux /proc/<pid>/status stream, 0 if absent.
	LinuxPID uint32

	// Notes lists, in the order found, every stream the reader had to skip and why; a processor
	// passes them on as processor notes. Empty for a well-formed dump.
	Notes []string

	data []byte
}

// Parse reads a minidump held in memory. It returns an error only when data is not a minidump at
// all or its stream directory cannot be read; a damaged stream is skipped with a note in
// Dump.Notes, so a dump that lost its module list still tells its exception. The returned Dump
// keeps a reference to data (thread contexts are read from it on demand): data must not be
// modified while the Dump is in use.
func Parse(data []byte) (*Dump, error) {
	if len(data) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than a header", ErrNotMinidump, len(data))
	}
	if le.Uint32(data) != signature || le.Uint32(data[4:])&0xffff != formatVersion {
		return nil, fmt.Errorf("%w: signature %#08x version %#08x", ErrNotMinidump, le.Uint32(data), le.Uint32(data[4:]))
	}
	d := &Dump{data: data}
	d.Header = Header{
		Version: le.Uint32(data[4:]),
		Streams: le.Uint32(data[8:]),
		Time:    time.Unix(int64(le.Uint32(data[20:])), 0).UTC(),
		Flags:   le.Uint64(data[24:]),
	}
	dirRVA := le.Uint32(data[12:])
	if d.Header.Streams > maxStreams {
		return nil, fmt.Errorf("%w: %d streams", ErrMalformed, d.Header.Streams)
	}
	dir, err := at(data, uint64(dirRVA), uint64(d.Header.Streams)*directoryEntrySize)
	if err != nil {
		return nil, fmt.Errorf("stream directory: %w", err)
	}
	d.Directory = make([]Stream, d.Header.Streams)
	for i := range d.Directory {
		e := dir[i*directoryEntrySize:]
		l := readLocation(e[4:])
		d.Directory[i] = Stream{Type: le.Uint32(e), Size: l.Size, RVA: l.RVA}
	}
	d.readStreams()
	return d, nil
}

// readStreams decodes the streams the reader knows. When a type appears twice, the first
// readable one wins, as in other readers.
func (d *Dump) readStreams() {
	for _, s := range d.Directory {
		if s.Type == unusedStream {
			continue
		}
		b, err := location{Size: s.Size, RVA: s.RVA}.bytes(d.data)
		if err != nil {
			d.note(s.Type, err)
			continue
		}
		switch s.Type {
		case StreamSystemInfo:
			if d.System == nil {
				d.System, err = readSystemInfo(d.data, b)
			}
		case StreamException:
			if d.Exception == nil {
				d.Exception, err = readException(b)
			}
		case StreamThreadList:
			if d.Threads == nil {
				d.Threads, err = readThreads(b)
			}
		case StreamModuleList:
			if d.Modules == nil {
				d.Modules, err = readModules(d.data, b)
			}
		case StreamMiscInfo:
			if d.Misc == nil {
				d.Misc, err = readMiscInfo(b)
			}
		case StreamLinuxProcStatus:
			if d.LinuxPID == 0 {
				d.LinuxPID = readProcStatusPID(b)
			}
		}
		if err != nil {
			d.note(s.Type, err)
		}
	}
}

func (d *Dump) note(streamType uint32, err error) {
	d.Notes = append(d.Notes, fmt.Sprintf("%s: %v", streamName(streamType), err))
}

// streamName names a stream type for notes.
func streamName(t uint32) string {
	switch t {
	case StreamThreadList:
		return "thread list"
	case StreamModuleList:
		return "module list"
	case StreamMemoryList:
		return "memory list"
	case StreamException:
		return "exception"
	case StreamSystemInfo:
		return "system info"
	case StreamMiscInfo:
		return "misc info"
	case StreamLinuxProcStatus:
		return "linux proc status"
	}
	return fmt.Sprintf("stream %#x", t)
}

// ProcessID returns the crashed process's ID: from the misc info stream when it says it holds
// one, else from the Linux proc status stream. ok is false when the dump records none.
func (d *Dump) ProcessID() (pid uint32, ok bool) {
	if d.Misc != nil && d.Misc.HasProcessID {
		return d.Misc.ProcessID, true
	}
	if d.LinuxPID != 0 {
		return d.LinuxPID, true
	}
	return 0, false
}
