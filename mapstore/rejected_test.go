package mapstore_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gridmap/gridmap/mapstore"
)

func TestRejectedError(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &mapstore.RejectedError{Keys: [][]byte{[]byte("a"), []byte("b")}, Reasons: []error{errors.New("r1"), errors.New("r2")}})
	if !errors.Is(err, mapstore.ErrRejected) {
		t.Fatal("a wrapped RejectedError does not match ErrRejected")
	}
	if r := mapstore.Rejected(err); r == nil || len(r.Keys) != 2 {
		t.Fatalf("Rejected = %v", r)
	}
	if mapstore.Rejected(errors.New("other")) != nil || errors.Is(errors.New("other"), mapstore.ErrRejected) {
		t.Fatal("another error is a rejection")
	}
	if msg := err.Error(); msg != `wrapped: mapstore: 2 entries rejected for good; "a": r1; "b": r2` {
		t.Fatalf("message %q", msg)
	}
}
