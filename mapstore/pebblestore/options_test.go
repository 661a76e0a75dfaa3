package pebblestore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Options keep the module's contract: the zero value is valid, WithDefaults fills it in, and
// Open refuses what Validate refuses, before it touches the directory.
func TestOptionsContract(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("zero Options: %v", err)
	}
	d := Options{}.WithDefaults()
	if d.BlobThreshold != DefaultBlobThreshold || d.BlobWriters != DefaultBlobWriters || d.WithDefaults().BlobWriters != d.BlobWriters {
		t.Fatalf("defaults: %+v", d)
	}
	if keep := (Options{BlobThreshold: -1}).WithDefaults(); keep.BlobThreshold != -1 {
		t.Fatalf("a negative BlobThreshold (every value inline) was replaced: %+v", keep)
	}
	bad := Options{BlobWriters: -1}
	if err := bad.Validate(); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("negative BlobWriters: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "never")
	if _, err := Open(dir, bad); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Open with bad options: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created %s for options it refused: %v", dir, err)
	}
}
