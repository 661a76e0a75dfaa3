package main

import (
	"os/exec"
	"syscall"
)

// setChildAttr makes the kernel kill a child when the parent dies, even by SIGKILL.
func setChildAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
