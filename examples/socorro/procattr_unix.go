//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// ownGroup puts the node process in a process group of its own, so a Ctrl-C in the terminal
// reaches only the launcher, which stops the nodes one after the other.
func ownGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }
