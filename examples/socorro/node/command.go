package node

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CommandTopic is the topic that steers every node's generator, as the design's load tool
// does: "s2" makes each node generate 2 reports a second, "l3000" caps the whole cluster at
// 3,000 reports a minute (shared evenly by the nodes), "stop" stops them ("l0" lifts the cap).
const CommandTopic = "command"

// ErrBadCommand is returned for a command message that is none of the above.
var ErrBadCommand = errors.New("node: bad command")

// Steering is the generators' setting, which every node derives from the commands it received
// (in the topic's one order, so all nodes agree).
type Steering struct {
	// PerNode is each node's rate in reports a second (0: stopped).
	PerNode float64 `json:"perNode"`
	// CapPerMinute caps the whole cluster, in reports a minute (0: no cap).
	CapPerMinute float64 `json:"capPerMinute"`
}

// Apply returns the setting after cmd.
func (s Steering) Apply(cmd string) (Steering, error) {
	cmd = strings.TrimSpace(strings.ToLower(cmd))
	if cmd == "stop" {
		s.PerNode = 0
		return s, nil
	}
	if len(cmd) < 2 || (cmd[0] != 's' && cmd[0] != 'l') {
		return s, fmt.Errorf("%w %q: want s<reports a second per node>, l<reports a minute for the cluster> or stop", ErrBadCommand, cmd)
	}
	v, err := strconv.ParseFloat(cmd[1:], 64)
	if err != nil || v < 0 || v > 1e6 {
		return s, fmt.Errorf("%w %q: the number must be within 0..1000000", ErrBadCommand, cmd)
	}
	if cmd[0] == 's' {
		s.PerNode = v
	} else {
		s.CapPerMinute = v
	}
	return s, nil
}

// Rate is one node's rate in reports a second when the cluster has nodes nodes: PerNode, or the
// node's even share of the cap if that is lower.
func (s Steering) Rate(nodes int) float64 {
	r := s.PerNode
	if s.CapPerMinute > 0 && nodes > 0 {
		r = min(r, s.CapPerMinute/60/float64(nodes))
	}
	return r
}
