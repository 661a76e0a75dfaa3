package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestRun builds the program and runs it: the README's embedding example works as printed.
func TestRun(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "embed")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin).Output()
	if err != nil {
		t.Fatalf("embed: %v\n%s", err, out)
	}
	if want := "{\"product\":\"Firefox\"}\n"; string(out) != want {
		t.Fatalf("output %q, want %q", out, want)
	}
}
