//go:build !gridmap_lib

package main

import (
	"context"
	"errors"
)

// haveLibrary tells the tests whether startMember starts real gridmap members.
const haveLibrary = false

// errNoLibrary: the root package gridmap does not exist yet. This file goes away when it does.
var errNoLibrary = errors.New("gridmap-bench: the gridmap root package is not available yet")

func startMember(ctx context.Context, spec memberSpec) (member, error) { return nil, errNoLibrary }
