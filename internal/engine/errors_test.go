package engine

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"

	"github.com/gridmap/gridmap/mapstore"
)

// sentinels lists every exported error of the package (TestSentinelsListed keeps it complete).
var sentinels = map[string]error{
	"ErrNotFound": ErrNotFound, "ErrClosed": ErrClosed, "ErrTimeout": ErrTimeout,
	"ErrValueTooLarge": ErrValueTooLarge, "ErrInvalidConfig": ErrInvalidConfig, "ErrCodec": ErrCodec,
	"ErrBadRequest": ErrBadRequest, "ErrNotLockOwner": ErrNotLockOwner, "ErrConflict": ErrConflict,
	"ErrCrossPartition": ErrCrossPartition, "ErrTxDone": ErrTxDone, "ErrNoProcessor": ErrNoProcessor,
	"ErrNoPredicate": ErrNoPredicate, "ErrProcessor": ErrProcessor, "ErrStore": ErrStore,
	"ErrDirtyLimit": ErrDirtyLimit, "ErrPartitionLost": ErrPartitionLost, "ErrWrongOwner": ErrWrongOwner,
	"ErrNoLease": ErrNoLease, "ErrLocked": ErrLocked, "ErrAlreadyRegistered": ErrAlreadyRegistered,
	"ErrMemoryLimit": ErrMemoryLimit, "ErrRestoreIncomplete": ErrRestoreIncomplete, "ErrOutcomeUnknown": ErrOutcomeUnknown,
}

// TestSentinelsListed: sentinels names every exported error errors.go declares.
func TestSentinelsListed(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(n.Name, "Err") {
						declared = append(declared, n.Name)
					}
				}
			}
		}
	}
	for _, n := range declared {
		if sentinels[n] == nil {
			t.Errorf("%s is not in sentinels", n)
		}
	}
	if len(declared) != len(sentinels) {
		t.Errorf("errors.go declares %d errors, sentinels lists %d", len(declared), len(sentinels))
	}
}

// TestSentinelErrorsRoundTrip: an error an owner returns that wraps one of the package's
// sentinels reaches a remote caller as an error errors.Is matches with it, whether it carries a
// message or not (the compact response form).
func TestSentinelErrorsRoundTrip(t *testing.T) {
	seen := map[status]string{}
	for name, base := range sentinels {
		for _, err := range []error{base, fmt.Errorf("waiting for backups of partition 3: %w", base)} {
			st := statusOf(err)
			msg := ""
			if err != base {
				msg = err.Error()
			}
			enc, encErr := encodeResponse(opResponse{Status: st, Msg: msg})
			if encErr != nil {
				t.Fatal(encErr)
			}
			resp, decErr := decodeResponse(enc)
			if decErr != nil {
				t.Fatal(decErr)
			}
			got := resp.Status.err(resp.Msg)
			if !errors.Is(got, base) {
				t.Errorf("%s: %q arrives as %q (status %d), which is not %s", name, err, got, st, name)
			}
		}
		st := statusOf(base)
		if other, dup := seen[st]; dup {
			t.Errorf("%s and %s share status %d", name, other, st)
		}
		seen[st] = name
	}
	// An owner's timeout is a deadline that passed: it matches context.DeadlineExceeded too.
	for _, msg := range []string{"", "partition 3: deadline passed"} {
		if got := statusOf(fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)).err(msg); !errors.Is(got, ErrTimeout) || !errors.Is(got, context.DeadlineExceeded) {
			t.Errorf("an owner's timeout with message %q arrives as %v", msg, got)
		}
	}
	if got := statusOf(fmt.Errorf("queue: %w", mapstore.ErrDirtyLimit)).err(""); !errors.Is(got, ErrDirtyLimit) {
		t.Errorf("mapstore.ErrDirtyLimit arrives as %v", got)
	}
	// The retryable statuses stay those that ask the caller to route again.
	for st := range statusNoPredicate + 1 {
		want := slices.Contains([]status{statusWrongOwner, statusNoLease, statusClosed, statusLocked}, st)
		if st.retryable() != want {
			t.Errorf("status %d retryable = %v", st, !want)
		}
	}
}
