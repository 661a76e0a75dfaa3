package node

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/generator"
	"github.com/gridmap/gridmap/topic"
)

// steerEvery is how often a node re-derives its generator's rate without a command: the cap's
// share changes when nodes join or leave.
const steerEvery = 2 * time.Second

// startSteering subscribes to the command topic and, when the node has dumps to generate
// reports from, starts its generator against its own /submit. Both run until runCtx ends.
func (n *Node) startSteering(ctx, runCtx context.Context) error {
	var err error
	if n.commands, err = topic.New[string](n.member.Topics(), CommandTopic); err != nil {
		return err
	}
	sub, err := n.commands.Subscribe(ctx)
	if err != nil {
		return err
	}
	n.steering = Steering{PerNode: n.cfg.Generate}
	if len(n.cfg.Dumps) > 0 {
		// The driver refuses a zero rate at start: start it at any rate and set the real one.
		n.gen, err = generator.New(generator.Config{Targets: []string{n.URL()}, Dumps: n.cfg.Dumps, Rate: 1, DumpSizes: n.cfg.DumpSizes, Logger: n.log})
		if err != nil {
			_ = sub.Close()
			return err
		}
		n.gen.SetRate(n.steering.Rate(n.aliveMembers()))
		n.wg.Go(func() {
			if err := n.gen.Run(runCtx); err != nil && runCtx.Err() == nil {
				n.log.Error("generator", "err", err)
			}
		})
	}
	n.wg.Go(func() {
		defer sub.Close()
		n.followCommands(runCtx, sub)
	})
	return nil
}

// followCommands applies the command topic's messages, in its order, to the node's steering.
func (n *Node) followCommands(ctx context.Context, sub *topic.Subscription[string]) {
	t := time.NewTicker(steerEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case msg, ok := <-sub.Messages():
			if !ok {
				if ctx.Err() == nil {
					n.log.Error("command topic subscription ended", "err", sub.Err())
				}
				return
			}
			if msg.Missed > 0 {
				n.log.Warn("command topic: messages missed", "count", msg.Missed)
				continue
			}
			if msg.Err != nil {
				n.log.Warn("command topic: undecodable message", "err", msg.Err)
				continue
			}
			n.steerMu.Lock()
			s, err := n.steering.Apply(msg.Value)
			if err == nil {
				n.steering = s
			}
			n.steerMu.Unlock()
			if err != nil {
				n.log.Warn("command topic", "err", err)
				continue
			}
			n.log.Info("command", "command", msg.Value, "perNode", s.PerNode, "capPerMinute", s.CapPerMinute)
		}
		if n.gen != nil {
			n.gen.SetRate(n.Steering().Rate(n.aliveMembers()))
		}
	}
}

// Steering returns the generators' setting as this node knows it.
func (n *Node) Steering() Steering {
	n.steerMu.Lock()
	defer n.steerMu.Unlock()
	return n.steering
}

// GeneratorRate is the rate this node's generator runs at, reports a second (0 without one).
func (n *Node) GeneratorRate() float64 {
	if n.gen == nil {
		return 0
	}
	return n.gen.Rate()
}

// aliveMembers counts the cluster's members gossip reports alive.
func (n *Node) aliveMembers() int {
	c := 0
	for _, m := range n.member.Cluster().Members() {
		if m.Alive {
			c++
		}
	}
	return c
}

// Command publishes cmd to the command topic, for every node, after checking it parses.
func (n *Node) Command(ctx context.Context, cmd string) error {
	if _, err := (Steering{}).Apply(cmd); err != nil {
		return err
	}
	_, err := n.commands.Publish(ctx, cmd)
	return err
}

// serveCommand is the pages' command form: it publishes the command and shows the index.
func (n *Node) serveCommand(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := n.Command(ctx, r.FormValue("command")); err != nil {
		http.Error(w, fmt.Sprintf("command not published: %v", err), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
