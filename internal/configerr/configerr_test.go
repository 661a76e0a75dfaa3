package configerr

import (
	"errors"
	"testing"
)

func TestProblemsSplitsJoin(t *testing.T) {
	sentinel := errors.New("invalid")
	a, b := errors.New("A is bad"), errors.New("B is bad")
	if Join(sentinel, nil) != nil {
		t.Fatal("Join of no problems is not nil")
	}
	err := Join(sentinel, []error{a, b})
	if !errors.Is(err, sentinel) || !errors.Is(err, a) || !errors.Is(err, b) {
		t.Fatalf("Join lost an error: %v", err)
	}
	got := Prefix("X.", Problems(err, sentinel))
	if len(got) != 2 || got[0].Error() != "X.A is bad" || got[1].Error() != "X.B is bad" || !errors.Is(got[1], b) {
		t.Fatalf("Problems+Prefix = %q", got)
	}
	if p := Problems(a, sentinel); len(p) != 1 || p[0] != a {
		t.Fatalf("an error of another shape: %v", p)
	}
	if Problems(nil, sentinel) != nil {
		t.Fatal("Problems(nil) is not nil")
	}
}
