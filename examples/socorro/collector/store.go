package collector

import (
	"context"
	"time"
)

// Crash is one accepted crash report, as the collector hands it to the Store.
type Crash struct {
	// ID is the crash ID (without the "bp-" prefix).
	ID string
	// Submitted is when the collector received the report, UTC.
	Submitted time.Time
	// Annotations are the client's annotations, with "uuid" set to ID.
	Annotations map[string]string
	// Dumps are the dumps by name.
	Dumps map[string][]byte
	// Metadata is what the collector learned about the submission.
	Metadata Metadata
}

// Metadata describes how a crash report was submitted, as Antenna records it.
type Metadata struct {
	Payload        string            // "multipart" or "json"
	Compressed     bool              // the body was gzipped
	PayloadSize    int64             // the body's size as sent
	DumpChecksums  map[string]string // SHA-256 of each dump, hex, by dump name
	UserAgent      string
	ThrottleRule   string
	ThrottleResult Result
	CollectorNotes []string
}

// Store keeps accepted crash reports. The Handler calls Save once per accepted report, from the
// request's goroutine (so concurrently for concurrent requests), and answers the client with the
// crash ID only after Save returned nil: Save must return only once the report is stored as
// durably as the deployment promises (in the grid, with its backups), and must store all of it
// or nothing. An error wrapping ErrStoreFull (no room for now) makes the Handler answer 503 with
// Retry-After; any other error 500; either way the client will send the report again.
// The Crash and everything it holds belong to the Store once Save is called: the Handler does not
// touch them again.
type Store interface {
	Save(ctx context.Context, c *Crash) error
}

// StoreFunc adapts a function to the Store interface.
type StoreFunc func(ctx context.Context, c *Crash) error

// Save calls f.
func (f StoreFunc) Save(ctx context.Context, c *Crash) error { return f(ctx, c) }
