package minidump

import (
	"bytes"
	"fmt"
	"strings"
)

const (
	moduleSize = 108
	// CodeView record signatures.
	cvPDB70 uint32 = 0x53445352 // "RSDS"
	cvPDB20 uint32 = 0x3031424e // "NB10"
	cvELF   uint32 = 0x4270454c // "LEpB" on disk, Breakpad's ELF build ID record (MD_CVINFOELF_SIGNATURE)
	// maxCodeView bounds a CodeView record: a GUID, an age and a path.
	maxCodeView = 64 << 10
)

// Module is one MINIDUMP_MODULE of the module list: an executable or library mapped into the
// crashed process.
type Module struct {
	Base uint64 // BaseOfImage
	Size uint32 // SizeOfImage
	// Name is the module's path as the client saw it.
	Name string
	// DebugFile is the symbol file name from the CodeView record (a PDB name on Windows, the
	// module name elsewhere), empty when there is no CodeView record.
	DebugFile string
	// DebugID identifies the build for symbol lookup: the CodeView GUID (or ELF build ID) in
	// uppercase hex followed by the age, as symbol servers index it.
	DebugID string
	// CodeID is the ELF build ID in lowercase hex (Linux), empty elsewhere.
	CodeID string
}

// BaseName is the file name of the module without its directory, whichever separator the client's
// platform uses ("test_app.exe", "libxul.so").
func (m *Module) BaseName() string {
	return baseName(m.Name)
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Contains reports whether address is inside the module's image.
func (m *Module) Contains(address uint64) bool {
	return address >= m.Base && address-m.Base < uint64(m.Size)
}

func readModules(data, b []byte) ([]Module, error) {
	n, entries, err := listCount(b, moduleSize)
	if err != nil {
		return nil, err
	}
	ms := make([]Module, n)
	for i := range ms {
		e := entries[i*moduleSize:]
		// BaseOfImage (u64), SizeOfImage, CheckSum, TimeDateStamp, ModuleNameRva at 20,
		// VS_FIXEDFILEINFO (52 bytes) at 24, CvRecord location at 76, MiscRecord at 84.
		m := Module{Base: le.Uint64(e), Size: le.Uint32(e[8:])}
		name, err := readString(data, le.Uint32(e[20:]))
		if err != nil {
			return nil, fmt.Errorf("module %d name: %w", i, err)
		}
		m.Name = name
		if cv := readLocation(e[76:]); cv.Size > 0 {
			if err := m.readCodeView(data, cv); err != nil {
				return nil, fmt.Errorf("module %d (%s) CodeView record: %w", i, baseName(name), err)
			}
		}
		ms[i] = m
	}
	return ms, nil
}

func (m *Module) readCodeView(data []byte, l location) error {
	if l.Size > maxCodeView {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, l.Size)
	}
	b, err := l.bytes(data)
	if err != nil {
		return err
	}
	if len(b) < 4 {
		return fmt.Errorf("%w: %d bytes", ErrTruncated, len(b))
	}
	switch le.Uint32(b) {
	case cvPDB70:
		// Signature, GUID (16 bytes), Age, then the NUL-terminated UTF-8 PDB path.
		if len(b) < 24 {
			return fmt.Errorf("%w: PDB 7.0 record of %d bytes", ErrTruncated, len(b))
		}
		m.DebugID = guidString(b[4:20]) + fmt.Sprintf("%X", le.Uint32(b[20:]))
		m.DebugFile = baseName(cString(b[24:]))
	case cvPDB20:
		// Signature, Offset, then a 32-bit timestamp signature, Age and the PDB path.
		if len(b) < 16 {
			return fmt.Errorf("%w: PDB 2.0 record of %d bytes", ErrTruncated, len(b))
		}
		m.DebugID = fmt.Sprintf("%08X%X", le.Uint32(b[8:]), le.Uint32(b[12:]))
		m.DebugFile = baseName(cString(b[16:]))
	case cvELF:
		id := b[4:]
		m.CodeID = fmt.Sprintf("%x", id)
		// Symbol servers index an ELF file by its build ID's first 16 bytes read as a GUID,
		// with age 0.
		var g [16]byte
		copy(g[:], id)
		m.DebugID = guidString(g[:]) + "0"
		m.DebugFile = baseName(m.Name)
	}
	return nil
}

// guidString formats 16 bytes holding a GUID (Data1 u32, Data2 u16, Data3 u16 little-endian, then
// 8 bytes) as 32 uppercase hex digits.
func guidString(g []byte) string {
	return fmt.Sprintf("%08X%04X%04X%X", le.Uint32(g), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:16])
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// ModuleAt returns the module whose image contains address, or nil.
func (d *Dump) ModuleAt(address uint64) *Module {
	for i := range d.Modules {
		if d.Modules[i].Contains(address) {
			return &d.Modules[i]
		}
	}
	return nil
}
