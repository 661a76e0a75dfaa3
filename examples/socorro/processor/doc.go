// Package processor turns a raw crash report (annotations and dumps, as the collector stored it)
// into a processed crash with Socorro's main fields: product, version, channel and build, OS and
// CPU, crash reason and address, crashing thread, the module and offset of the crashing
// instruction, a signature, the checksum of every dump and the processor's notes.
//
// Process is pure: no I/O, no clock (the processing time is an argument), so the same raw crash
// processed twice, or on two nodes, gives the same processed crash. It never panics on what a
// client sent: a dump that cannot be read gives a processed crash marked as such
// (MinidumpStatus) with a note saying why.
package processor
