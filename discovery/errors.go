package discovery

import "errors"

var (
	// ErrNoName is returned by DNS.Seeds when Name is empty.
	ErrNoName = errors.New("discovery: DNS name is empty")
	// ErrBadPort is returned by DNS.Seeds when Port is outside 1..65535.
	ErrBadPort = errors.New("discovery: bad port")
	// ErrLookup wraps a failed DNS lookup (other than "no such host").
	ErrLookup = errors.New("discovery: lookup failed")
)
