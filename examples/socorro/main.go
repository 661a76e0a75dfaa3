// Command socorro runs the Socorro demo on gridmap: a launcher (the design's "cloud tool") that
// starts N node processes on this machine, each a gridmap member that collects crash reports on
// POST /submit, processes them and serves pages, each with a generator posting reports built
// from real minidumps to itself (steered by the command topic: s2, l3000, stop), and stops them
// cleanly on Ctrl-C.
//
//	go run ./examples/socorro                  # 3 nodes, generators at 2 reports/s in all
//	go run ./examples/socorro -nodes 5 -rate 0 # 5 nodes, generators idle until a command
//
// "socorro node ..." runs one node; the launcher starts its nodes that way.
package main

import (
	"fmt"
	"os"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "node" {
		err = runNode(os.Args[2:])
	} else {
		err = runLauncher(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "socorro:", err)
		os.Exit(1)
	}
}
