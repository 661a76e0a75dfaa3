// Command member runs one gridmap member as a long-lived process configured by environment
// variables: the program the container image in deploy/ packages and the Kubernetes StatefulSet
// in deploy/k8s runs. An application embeds gridmap the same way; this one only holds a map's
// partitions, to show and test the deployment.
//
//	GRIDMAP_NAME            member name in logs (the pod name)                 default: generated
//	GRIDMAP_BIND            member traffic host:port                           default 0.0.0.0:7000
//	GRIDMAP_GOSSIP_BIND     gossip host:port                                   default 0.0.0.0:7946
//	GRIDMAP_ADVERTISE_HOST  the address other members dial (the pod IP)        required with a wildcard bind
//	GRIDMAP_DNS             a DNS name resolving to every member (headless Service): discovery.DNS
//	GRIDMAP_SEEDS           comma-separated gossip addresses, when GRIDMAP_DNS is not set
//	GRIDMAP_EXPECT          members that start the cluster together           default 1
//	GRIDMAP_TIMINGS         lan, local or wan                                  default lan
//	GRIDMAP_HEALTH_ADDR     host:port of the probes' HTTP server               default: none
//	GRIDMAP_CONSOLE_ADDR    host:port of the management console and /metrics   default: none
//	GRIDMAP_CONSOLE_TOKEN   bearer token for the console's write actions       default: read-only
//
// With GRIDMAP_HEALTH_ADDR, GET /livez answers 200 while the member runs, and GET /readyz answers
// 200 only while the cluster is safe (every partition owned and backed up, nothing moving), 503
// otherwise: as a readiness probe it makes a rolling update wait for the cluster to be safe again
// before it stops the next member.
//
// SIGTERM or SIGINT closes the member gracefully: it hands its partitions to the others first,
// so a rolling restart loses nothing (give it terminationGracePeriodSeconds to do so).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/discovery"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Getenv, logger, os.Stdout); err != nil {
		logger.Error("member failed", "err", err)
		os.Exit(1)
	}
}

// config builds the member's Config from the environment.
func config(getenv func(string) string, logger *slog.Logger) (gridmap.Config, error) {
	or := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	cfg := gridmap.Config{
		Name:           getenv("GRIDMAP_NAME"),
		BindAddr:       or("GRIDMAP_BIND", "0.0.0.0:7000"),
		GossipBindAddr: or("GRIDMAP_GOSSIP_BIND", "0.0.0.0:7946"),
		Logger:         logger,
		Console:        gridmap.ConsoleConfig{Addr: getenv("GRIDMAP_CONSOLE_ADDR"), Token: getenv("GRIDMAP_CONSOLE_TOKEN")},
	}
	if host := getenv("GRIDMAP_ADVERTISE_HOST"); host != "" {
		_, port, err := net.SplitHostPort(cfg.BindAddr)
		if err != nil {
			return cfg, fmt.Errorf("GRIDMAP_BIND: %w", err)
		}
		_, gport, err := net.SplitHostPort(cfg.GossipBindAddr)
		if err != nil {
			return cfg, fmt.Errorf("GRIDMAP_GOSSIP_BIND: %w", err)
		}
		cfg.AdvertiseAddr = net.JoinHostPort(host, port)
		cfg.GossipAdvertiseAddr = net.JoinHostPort(host, gport)
	}
	if name := getenv("GRIDMAP_DNS"); name != "" {
		_, gport, err := net.SplitHostPort(cfg.GossipBindAddr)
		if err != nil {
			return cfg, fmt.Errorf("GRIDMAP_GOSSIP_BIND: %w", err)
		}
		port, err := strconv.Atoi(gport)
		if err != nil {
			return cfg, fmt.Errorf("GRIDMAP_GOSSIP_BIND port: %w", err)
		}
		cfg.Discovery = discovery.DNS{Name: name, Port: port}
	} else if seeds := getenv("GRIDMAP_SEEDS"); seeds != "" {
		cfg.Seeds = strings.Split(seeds, ",")
	}
	if v := getenv("GRIDMAP_EXPECT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return cfg, fmt.Errorf("GRIDMAP_EXPECT: %w", err)
		}
		cfg.ExpectMembers = n
	}
	switch t := or("GRIDMAP_TIMINGS", "lan"); t {
	case "lan":
		cfg.Timings = gridmap.LANTimings()
	case "local":
		cfg.Timings = gridmap.LocalTimings()
	case "wan":
		cfg.Timings = gridmap.WANTimings()
	default:
		return cfg, fmt.Errorf("GRIDMAP_TIMINGS %q: want lan, local or wan", t)
	}
	return cfg, cfg.Validate()
}

// run starts the member, prints "ready <gossip address> <members>" to out once its cluster is
// safe (every partition owned and backed up), and closes it gracefully when ctx ends.
func run(ctx context.Context, getenv func(string) string, logger *slog.Logger, out io.Writer) error {
	cfg, err := config(getenv, logger)
	if err != nil {
		return err
	}
	m, err := gridmap.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if addr := getenv("GRIDMAP_HEALTH_ADDR"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			m.Close(context.Background())
			return fmt.Errorf("GRIDMAP_HEALTH_ADDR: %w", err)
		}
		srv := &http.Server{Handler: healthHandler(m.Cluster().Safe), ReadHeaderTimeout: 5 * time.Second}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		defer func() {
			srv.Close()
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				logger.Error("health server", "err", err)
			}
		}()
	}
	if err := m.Cluster().WaitSafe(ctx); err != nil && ctx.Err() == nil {
		m.Close(context.Background())
		return err
	}
	fmt.Fprintln(out, "ready", m.GossipAddr(), len(m.Cluster().Members()))
	<-ctx.Done()
	// A fresh context: the hand-off must outlive the signal that asked for it.
	closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return m.Close(closeCtx)
}

// healthHandler serves the probes: /livez always 200, /readyz 200 while safe() holds, else 503.
func healthHandler(safe func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !safe() {
			http.Error(w, "not safe: partitions moving or missing backups", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "safe")
	})
	return mux
}
