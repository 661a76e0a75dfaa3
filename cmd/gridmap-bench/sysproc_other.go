//go:build !linux

package main

import "os/exec"

// setChildAttr: children notice the parent's death when their stdin reaches EOF.
func setChildAttr(cmd *exec.Cmd) {}
