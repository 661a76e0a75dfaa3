package elasticsearch

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// IDEncoding says how a map's keys become document _ids.
type IDEncoding uint8

const (
	// IDRaw (the default) uses the key as the _id, so documents are found by their natural id
	// (a crash ID). The key must then be valid UTF-8 of 1 to 512 bytes: other keys are refused
	// for good (mapstore.ErrRejected).
	IDRaw IDEncoding = iota
	// IDBase64 uses "k" and the unpadded URL-safe base64 of the key (an _id cannot be empty),
	// so any key of up to 383 bytes, empty and binary keys included, can be stored.
	IDBase64
)

// maxIDBytes is Elasticsearch's limit on the length of an _id.
const maxIDBytes = 512

// id returns the _id of key.
func (e IDEncoding) id(key []byte) (string, error) {
	if e == IDBase64 {
		id := "k" + base64.RawURLEncoding.EncodeToString(key)
		if len(id) > maxIDBytes {
			return "", fmt.Errorf("key of %d bytes: its base64 _id is longer than %d bytes", len(key), maxIDBytes)
		}
		return id, nil
	}
	switch {
	case len(key) == 0:
		return "", fmt.Errorf("empty key: an _id cannot be empty (use IDBase64)")
	case len(key) > maxIDBytes:
		return "", fmt.Errorf("key of %d bytes: an _id is at most %d bytes", len(key), maxIDBytes)
	case !utf8.Valid(key):
		return "", fmt.Errorf("key %q is not UTF-8 (use IDBase64)", key)
	}
	return string(key), nil
}

// key returns the key of an _id.
func (e IDEncoding) key(id string) ([]byte, error) {
	if e == IDBase64 {
		b64, ok := strings.CutPrefix(id, "k")
		k, err := base64.RawURLEncoding.DecodeString(b64)
		if !ok || err != nil {
			return nil, fmt.Errorf("%w: _id %q is not base64: %v", ErrBadResponse, id, err)
		}
		return k, nil
	}
	return []byte(id), nil
}
