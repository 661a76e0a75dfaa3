// Package configerr holds the one shape every Validate method of this module returns, so that
// a configuration that nests another (a member's Config holds each map's, a map's holds its
// store's) can report the inner problems as its own: every problem at once, under one sentinel.
package configerr

import (
	"errors"
	"fmt"
)

// Join returns nil if errs is empty, else one error wrapping sentinel and every problem:
// fmt.Errorf("%w: %w", sentinel, errors.Join(errs...)).
func Join(sentinel error, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", sentinel, errors.Join(errs...))
}

// Problems splits an error made by Join (what the Validate methods of this module return) into
// the problems it joins, without sentinel, so that an outer Validate can prefix them with the
// field that holds the inner configuration and report them under its own sentinel. An error of
// another shape comes back whole.
func Problems(err, sentinel error) []error {
	if err == nil {
		return nil
	}
	multi, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range multi.Unwrap() {
		if e == sentinel {
			continue
		}
		if joined, ok := e.(interface{ Unwrap() []error }); ok {
			out = append(out, joined.Unwrap()...)
		} else {
			out = append(out, e)
		}
	}
	return out
}

// Prefix returns each of errs as "prefix" followed by its message (wrapping it).
func Prefix(prefix string, errs []error) []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return out
}
