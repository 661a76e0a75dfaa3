package collector

import (
	"fmt"
	"io"
	"time"
)

// NewCrashID makes a crash ID in Socorro's form: a random (version 4) UUID whose last 7 hex digits
// are replaced by the throttle result (0 accept, 1 defer) and the submission date as YYMMDD in
// UTC, e.g. "de1bb258-cbbf-4589-a673-34f800160918" (accepted on 2016-09-18). Storage and
// processing read the date and the throttle result back from the ID. random supplies the 16
// random bytes (crypto/rand.Reader in production).
func NewCrashID(random io.Reader, submitted time.Time, result Result) (string, error) {
	var u [16]byte
	if _, err := io.ReadFull(random, u[:]); err != nil {
		return "", fmt.Errorf("collector: crash ID: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	s := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	d := submitted.UTC()
	return fmt.Sprintf("%s%d%02d%02d%02d", s[:len(s)-7], result.digit(), d.Year()%100, int(d.Month()), d.Day()), nil
}

// ValidCrashID reports whether id has the form of a crash ID: 8-4-4-4-12 lowercase hex digits
// whose last 6 are decimal (the date) and whose 7th from last is a throttle result (0 or 1).
func ValidCrashID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case i == 29:
			if c != '0' && c != '1' {
				return false
			}
		case i > 29:
			if c < '0' || c > '9' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// CrashIDDate returns the submission date encoded in a crash ID, and false if id is not valid or
// its date is not a real date.
func CrashIDDate(id string) (time.Time, bool) {
	if !ValidCrashID(id) {
		return time.Time{}, false
	}
	t, err := time.Parse("060102", id[30:])
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}
