// Package minidump reads the minidump files that Breakpad and Crashpad crash clients upload, far
// enough to say what crashed: the system, the exception, the threads, the loaded modules and the
// process, and from them the crash reason in the platform's own terms, the crash address and the
// module and offset of the crashing instruction.
//
// The reader follows the public description of the format: Microsoft's MINIDUMP_* structures,
// with the extensions Breakpad documents in minidump_format.h (its platform and CPU identifiers,
// the Linux streams) and the ones Crashpad writes for macOS and Linux. It does not walk stacks
// and does not need symbols.
//
// Minidumps come from the network, so nothing in one is trusted: every size, count and offset is
// checked against the file before it is used, a count can never make the reader allocate more
// than the file could describe, and a malformed dump gives an error or a [Dump.Notes] entry,
// never a panic.
package minidump
