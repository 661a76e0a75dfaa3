//go:build !unix

package main

import "os/exec"

// ownGroup does nothing here: the node processes share the launcher's console.
func ownGroup(*exec.Cmd) {}
