package hbase

import (
	"fmt"
	"time"
)

// RowKeys turns a map's keys into HBase row keys and back. The store calls RowKey for every
// write and read, and MapKey for every row LoadAllKeys lists.
type RowKeys interface {
	RowKey(key []byte) ([]byte, error)
	MapKey(row []byte) ([]byte, error)
}

// IdentityKeys uses map keys as row keys unchanged.
type IdentityKeys struct{}

// RowKey returns key.
func (IdentityKeys) RowKey(key []byte) ([]byte, error) { return key, nil }

// MapKey returns row.
func (IdentityKeys) MapKey(row []byte) ([]byte, error) { return row, nil }

// CrashIDLen is the length of a Socorro crash ID: a UUID whose last six characters are the
// submission date as YYMMDD ("de1bb258-cbbf-4589-a673-34f800160918" was submitted on
// 2016-09-18).
const CrashIDLen = 36

// SocorroKeys lays rows out as Socorro's HBase crash storage does: a map key starts with a
// crash ID (and may go on, for example "<crash id>/dump/upload_file_minidump"), and its row key
// is the crash ID's first hex digit, then the submission date YYMMDD, then the map key:
//
//	de1bb258-cbbf-4589-a673-34f800160918  ->  d160918de1bb258-cbbf-4589-a673-34f800160918
//
// The first digit is random (a UUID's), so each day's writes spread over 16 salt buckets, and
// thus over up to 16 regions (pre-split a table at "1", "2", ... "f" to use them from the
// start), instead of all hitting the region holding "today". One day's crashes are 16 row
// prefixes (DayPrefixes); the rows of one crash are adjacent.
type SocorroKeys struct{}

// RowKey implements RowKeys; a key that does not start with a crash ID fails with ErrBadKey.
func (SocorroKeys) RowKey(key []byte) ([]byte, error) {
	if err := checkCrashID(key); err != nil {
		return nil, err
	}
	row := make([]byte, 0, 7+len(key))
	row = append(row, key[0])
	row = append(row, key[CrashIDLen-6:CrashIDLen]...)
	return append(row, key...), nil
}

// MapKey implements RowKeys: it drops the 7-byte salt and date prefix after checking it.
func (SocorroKeys) MapKey(row []byte) ([]byte, error) {
	if len(row) < 7+CrashIDLen {
		return nil, fmt.Errorf("%w: row %q is too short for a Socorro row key", ErrBadKey, row)
	}
	key := row[7:]
	if err := checkCrashID(key); err != nil {
		return nil, err
	}
	if row[0] != key[0] || string(row[1:7]) != string(key[CrashIDLen-6:CrashIDLen]) {
		return nil, fmt.Errorf("%w: row %q: prefix does not match its crash ID", ErrBadKey, row)
	}
	return key, nil
}

// DayPrefixes returns the 16 row prefixes (one per salt digit) under which the crashes
// submitted on day are stored: scan each (ScanOptions.Prefix) to list one day.
func (SocorroKeys) DayPrefixes(day time.Time) [][]byte {
	date := day.UTC().Format("060102")
	out := make([][]byte, 0, 16)
	for _, d := range "0123456789abcdef" {
		out = append(out, []byte(string(d)+date))
	}
	return out
}

// SplitKeys returns the 15 split points "1" ... "f" that give each salt digit a region of its
// own: pass them as TableOptions.SplitKeys.
func (SocorroKeys) SplitKeys() [][]byte {
	out := make([][]byte, 0, 15)
	for _, d := range "123456789abcdef" {
		out = append(out, []byte(string(d)))
	}
	return out
}

// checkCrashID checks that key starts with a crash ID: 8-4-4-4-12 lower-case hex digits whose
// last six are a date YYMMDD.
func checkCrashID(key []byte) error {
	if len(key) < CrashIDLen {
		return fmt.Errorf("%w: %q does not start with a %d-character crash ID", ErrBadKey, key, CrashIDLen)
	}
	for i, b := range key[:CrashIDLen] {
		switch i {
		case 8, 13, 18, 23:
			if b != '-' {
				return fmt.Errorf("%w: %q: no dash at %d of the crash ID", ErrBadKey, key[:CrashIDLen], i)
			}
		default:
			if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f') {
				return fmt.Errorf("%w: %q: not a lower-case hex crash ID", ErrBadKey, key[:CrashIDLen])
			}
		}
	}
	if _, err := time.Parse("060102", string(key[CrashIDLen-6:CrashIDLen])); err != nil {
		return fmt.Errorf("%w: %q: the last six digits are not a date YYMMDD", ErrBadKey, key[:CrashIDLen])
	}
	return nil
}
