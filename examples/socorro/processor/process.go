package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/minidump"
)

// MainDump is the name of the crashing process's minidump in a submission; other dumps (of
// other processes) are checksummed and kept but not read.
const MainDump = "upload_file_minidump"

// Raw is a crash report as the collector stored it.
type Raw struct {
	ID          string
	Submitted   time.Time
	Annotations map[string]string
	Dumps       map[string][]byte
	// CollectorNotes are the collector's notes on the submission; they open the processor
	// notes.
	CollectorNotes []string
}

// Minidump status values.
const (
	StatusOK      = "OK"           // the main dump was read
	StatusNoDump  = "NO_DUMP"      // the report has no main dump
	StatusInvalid = "INVALID"      // the main dump is not a minidump or its directory is unreadable
	StatusPartial = "PARTIAL"      // the main dump was read, but streams of it were damaged
	StatusNoCrash = "NO_EXCEPTION" // a readable dump without an exception stream
)

// Crash is a processed crash: Socorro's main fields, named as Socorro names them in JSON.
type Crash struct {
	ID             string    `json:"uuid"`
	Product        string    `json:"product"`
	Version        string    `json:"version"`
	ReleaseChannel string    `json:"release_channel"`
	BuildID        string    `json:"build"`
	Submitted      time.Time `json:"date_processed"`
	Processed      time.Time `json:"completed_datetime"`

	OSName    string `json:"os_name"`
	OSVersion string `json:"os_version"`
	CPUArch   string `json:"cpu_arch"`
	CPUInfo   string `json:"cpu_info"`
	CPUCount  int    `json:"cpu_count"`
	PID       uint32 `json:"pid,omitempty"`

	Reason         string `json:"reason"`
	Address        string `json:"address"`
	CrashingThread int    `json:"crashing_thread"` // index in the thread list; -1 if unknown
	Module         string `json:"crashing_module"`
	ModuleOffset   string `json:"crashing_module_offset"`
	// InstructionPointer is the crashing instruction's address, "" when the dump gives none.
	InstructionPointer string `json:"instruction_pointer"`
	Signature          string `json:"signature"`
	// JavaStackTrace is set for Java crashes, whose signature comes from it.
	JavaStackTrace string `json:"java_stack_trace,omitempty"`

	// DumpChecksums is the SHA-256 (hex) of every dump, by dump name.
	DumpChecksums map[string]string `json:"dump_checksums"`
	// MinidumpStatus says whether the main dump could be used: StatusOK or another Status*.
	MinidumpStatus string `json:"mdsw_status_string"`
	// Notes are the collector's and the processor's notes: what was missing, damaged or fixed.
	Notes []string `json:"processor_notes"`
}

var buildIDForm = regexp.MustCompile(`^\d{14}$`)

// Process makes the processed crash of raw with the given signature rules (nil: DefaultRules),
// stamped as processed at processedAt. It reads the dumps and never changes them.
func Process(raw *Raw, rules *Rules, processedAt time.Time) *Crash {
	if rules == nil {
		rules = DefaultRules()
	}
	a := raw.Annotations
	c := &Crash{
		ID:             raw.ID,
		Product:        a["ProductName"],
		Version:        a["Version"],
		ReleaseChannel: a["ReleaseChannel"],
		BuildID:        a["BuildID"],
		Submitted:      raw.Submitted.UTC(),
		Processed:      processedAt.UTC(),
		CrashingThread: -1,
		DumpChecksums:  map[string]string{},
		Notes:          slices.Clone(raw.CollectorNotes),
	}
	for _, field := range []struct{ name, value string }{{"ProductName", c.Product}, {"Version", c.Version}} {
		if field.value == "" {
			c.note("annotation %s is missing", field.name)
		}
	}
	if c.BuildID != "" && !buildIDForm.MatchString(c.BuildID) {
		c.note("BuildID %q is not 14 digits (YYYYMMDDhhmmss)", c.BuildID)
	}
	for _, name := range sortedNames(raw.Dumps) {
		sum := sha256.Sum256(raw.Dumps[name])
		c.DumpChecksums[name] = hex.EncodeToString(sum[:])
	}

	frames, crashingThread := c.readDump(raw.Dumps)

	var sig string
	var notes []string
	if trace, ok := a["JavaStackTrace"]; ok {
		c.JavaStackTrace = trace
		sig, notes = rules.Java(trace)
	} else {
		sig, notes = rules.Native(frames, crashingThread)
	}
	c.Notes = append(c.Notes, notes...)
	sig, notes = rules.decorate(sig, a)
	c.Notes = append(c.Notes, notes...)
	c.Signature = sig
	return c
}

// readDump fills the fields that come from the main minidump and returns the crashing thread's
// frames for the signature (only the crashing frame: the reader does not walk stacks) and
// whether a crashing thread was identified.
func (c *Crash) readDump(dumps map[string][]byte) ([]string, bool) {
	data, ok := dumps[MainDump]
	if !ok {
		c.MinidumpStatus = StatusNoDump
		if len(dumps) > 0 {
			c.note("no %s among the dumps %v", MainDump, sortedNames(dumps))
		}
		return nil, false
	}
	d, err := minidump.Parse(data)
	if err != nil {
		c.MinidumpStatus = StatusInvalid
		c.note("%s: %v", MainDump, err)
		return nil, false
	}
	c.MinidumpStatus = StatusOK
	if d.System == nil && d.Exception == nil && d.Threads == nil && d.Modules == nil && len(d.Notes) > 0 {
		// A header and a directory whose every stream is unreadable: nothing of it is usable.
		c.MinidumpStatus = StatusInvalid
		for _, n := range d.Notes {
			c.note("%s: %s", MainDump, n)
		}
		return nil, false
	}
	for _, n := range d.Notes {
		c.MinidumpStatus = StatusPartial
		c.note("%s: %s", MainDump, n)
	}
	if s := d.System; s != nil {
		c.OSName, c.OSVersion, c.CPUArch, c.CPUInfo, c.CPUCount = s.OS(), s.OSVersion(), s.CPUArch(), s.CPUInfo(), int(s.CPUCount)
	} else {
		c.note("%s: no system info", MainDump)
	}
	if pid, ok := d.ProcessID(); ok {
		c.PID = pid
	}
	crash, notes, err := d.Crash()
	for _, n := range notes {
		c.note("%s: %s", MainDump, n)
	}
	if errors.Is(err, minidump.ErrNoException) {
		if c.MinidumpStatus == StatusOK {
			c.MinidumpStatus = StatusNoCrash
		}
		c.note("%s: no exception stream: no crash reason or crashing thread", MainDump)
		return nil, false
	}
	c.Reason = crash.Reason
	c.Address = fmt.Sprintf("%#x", crash.Address)
	c.CrashingThread = crash.ThreadIndex
	if !crash.HasIP {
		return nil, crash.ThreadIndex >= 0
	}
	c.InstructionPointer = fmt.Sprintf("%#x", crash.IP)
	module := ""
	if crash.Module != nil {
		module = crash.Module.BaseName()
		c.Module = module
		c.ModuleOffset = fmt.Sprintf("%#x", crash.ModuleOffset)
	}
	return []string{frameSignature(module, crash.ModuleOffset, crash.IP)}, true
}

func (c *Crash) note(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
