package collector

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"
)

func TestNewCrashID(t *testing.T) {
	// Fixed random bytes: the ID is the UUID of those bytes with version 4 and the RFC 4122
	// variant set, its last 7 digits replaced by the throttle digit and YYMMDD.
	random := bytes.NewReader(bytes.Repeat([]byte{0xff}, 16))
	id, err := NewCrashID(random, time.Date(2016, 9, 18, 23, 59, 0, 0, time.UTC), Accept)
	if err != nil {
		t.Fatal(err)
	}
	if id != "ffffffff-ffff-4fff-bfff-fffff0160918" {
		t.Errorf("id %q, want ffffffff-ffff-4fff-bfff-fffff0160918", id)
	}
	// The date is the UTC date.
	east := time.FixedZone("UTC+10", 10*3600)
	id, _ = NewCrashID(rand.Reader, time.Date(2026, 1, 1, 5, 0, 0, 0, east), Defer)
	if id[29:] != "1251231" {
		t.Errorf("id %q: want deferred, 2025-12-31 UTC", id)
	}
	if d, ok := CrashIDDate(id); !ok || !d.Equal(time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date %v %v", d, ok)
	}
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewCrashID(rand.Reader, time.Now(), Accept)
		if err != nil || !ValidCrashID(id) || seen[id] {
			t.Fatalf("id %q err %v duplicate %v", id, err, seen[id])
		}
		seen[id] = true
	}
	if _, err := NewCrashID(bytes.NewReader(nil), time.Now(), Accept); err == nil {
		t.Error("no random bytes: no error")
	}
}

func TestValidCrashID(t *testing.T) {
	for id, want := range map[string]bool{
		"de1bb258-cbbf-4589-a673-34f800160918":  true,
		"de1bb258-cbbf-4589-a673-34f801160918":  true,
		"de1bb258-cbbf-4589-a673-34f802160918":  false, // throttle digit 2
		"de1bb258-cbbf-4589-a673-34f80016091":   false,
		"de1bb258-cbbf-4589-a673-34f8001609180": false,
		"DE1BB258-cbbf-4589-a673-34f800160918":  false,
		"de1bb258-cbbf-4589-a673-34f80016091a":  false,
		"de1bb258xcbbf-4589-a673-34f800160918":  false,
		"":                                      false,
		"../../../etc/passwd":                   false,
	} {
		if ValidCrashID(id) != want {
			t.Errorf("ValidCrashID(%q) = %v", id, !want)
		}
	}
	if _, ok := CrashIDDate("de1bb258-cbbf-4589-a673-34f800161399"); ok {
		t.Error("month 13 accepted as a date")
	}
}
