package elasticsearch

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The week numbers are strftime's (checked against Python's datetime.strftime).
func TestIndexPattern(t *testing.T) {
	p, err := parseIndex("socorro%Y%W-%G-%V-%m%d%%")
	if err != nil {
		t.Fatal(err)
	}
	for date, want := range map[string]string{
		"2026-01-01": "socorro202600-2026-01-0101%",
		"2026-01-04": "socorro202600-2026-01-0104%",
		"2026-01-05": "socorro202601-2026-02-0105%",
		"2024-12-31": "socorro202453-2025-01-1231%",
		"2027-01-01": "socorro202700-2026-53-0101%",
		"2021-01-03": "socorro202100-2020-53-0103%",
		"2020-12-31": "socorro202052-2020-53-1231%",
	} {
		d, _ := time.Parse(time.DateOnly, date)
		if got := p.name(d); got != want {
			t.Errorf("%s: %s, want %s", date, got, want)
		}
	}
	if w := p.wildcard(); w != "socorro*-*-*-*%" {
		t.Errorf("wildcard %s", w)
	}
	if b := p.base(); b != "socorro---%" {
		t.Errorf("base %s", b)
	}
	fixed, _ := parseIndex("crashes")
	if fixed.timed || fixed.name(time.Now()) != "crashes" || fixed.wildcard() != "crashes" {
		t.Errorf("fixed name: %+v", fixed)
	}
	for _, bad := range []string{"", "Upper", "a%", "a%q", "_x", "a b", "a,b"} {
		if _, err := parseIndex(bad); err == nil {
			t.Errorf("parseIndex(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{Index: "crashes"}); err != nil {
		t.Fatalf("a minimal config: %v", err)
	}
	_, err := New(Config{Index: "socorro%Y%W", Settings: []byte(`[1]`), Refresh: "now", BulkWorkers: -1, RetryInitial: time.Hour})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad config: %v", err)
	}
	for _, want := range []string{"KeyTime is required", "Settings", "Refresh", "BulkWorkers", "RetryMax"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %s: %v", want, err)
		}
	}
}

func TestIDs(t *testing.T) {
	for _, k := range [][]byte{{}, {0, 0xff}, []byte("crash-1")} {
		id, err := IDBase64.id(k)
		if err != nil {
			t.Fatal(err)
		}
		back, err := IDBase64.key(id)
		if err != nil || string(back) != string(k) {
			t.Fatalf("base64 id of %q: %q -> %q, %v", k, id, back, err)
		}
	}
	for _, k := range [][]byte{{}, {0xff}, make([]byte, 513)} {
		if _, err := IDRaw.id(k); err == nil {
			t.Errorf("raw id of %q accepted", k)
		}
	}
	if _, err := IDBase64.id(make([]byte, 384)); err == nil {
		t.Error("a 384-byte key makes a base64 _id over 512 bytes, accepted")
	}
}
