package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed static
var staticFiles embed.FS

// Source gives the console the cluster's state. Cluster is called on an HTTP request's
// goroutine, concurrently; it asks the other members and returns within ctx (members that did
// not answer in time come back with Member.Error set).
type Source interface {
	Cluster(ctx context.Context) Cluster
}

// MaxMessageSize bounds a message published through the console, in bytes.
const MaxMessageSize = 1 << 20

// clusterTimeout bounds a console request's gathering of the other members' figures.
const clusterTimeout = 3 * time.Second

// Server serves the console of one member. Start it with New; Close stops it.
type Server struct {
	cfg       Config
	log       *slog.Logger
	tokenHash [32]byte
	ln        net.Listener
	http      *http.Server
	publisher atomic.Pointer[publisherBox]
	done      chan struct{}
}

type publisherBox struct{ p Publisher }

// New listens on cfg.Addr and serves the console until Close.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("console: listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, ln: ln, done: make(chan struct{})}
	s.tokenHash = sha256Sum(cfg.Token)
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("console server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the console listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetPublisher wires in the topic service the publish form uses (nil: none, publishing fails
// with 503). It may be called at any time.
func (s *Server) SetPublisher(p Publisher) {
	if p == nil {
		s.publisher.Store(nil)
		return
	}
	s.publisher.Store(&publisherBox{p})
}

// Close stops serving: requests in progress get up to ctx's end to finish.
func (s *Server) Close(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = s.http.Close()
	}
	<-s.done
	return err
}

// Handler returns the console's HTTP handler (what New serves).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	if s.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	}
	mux.HandleFunc("GET /api/cluster", s.serveCluster)
	mux.HandleFunc("GET /api/members", s.serveMembers)
	mux.HandleFunc("POST /api/topics/{topic}/publish", s.servePublish)
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	mux.Handle("GET /", http.FileServerFS(static))
	return securityHeaders(mux)
}

// securityHeaders adds headers that keep the page from being framed or sniffed, and from
// loading anything from elsewhere.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) cluster(r *http.Request) Cluster {
	ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
	defer cancel()
	c := s.cfg.Source.Cluster(ctx)
	c.CanWrite = s.cfg.Token != ""
	return c
}

func (s *Server) serveCluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cluster(r))
}

func (s *Server) serveMembers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cluster(r).Members)
}

// authorize checks a write request's bearer token in constant time (both sides hashed first,
// so that not even the token's length shows) and answers 401 or 403 when it fails.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Token == "" {
		writeError(w, http.StatusForbidden, "the console is read-only: no token is configured")
		return false
	}
	auth := r.Header.Get("Authorization")
	got, ok := strings.CutPrefix(auth, "Bearer ")
	h := sha256.Sum256([]byte(got))
	if !ok || subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gridmap"`)
		writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
		return false
	}
	return true
}

func (s *Server) servePublish(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	topic := r.PathValue("topic")
	if topic == "" {
		writeError(w, http.StatusBadRequest, "no topic")
		return
	}
	msg, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessageSize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("message larger than %d bytes", MaxMessageSize))
		return
	}
	box := s.publisher.Load()
	if box == nil {
		writeError(w, http.StatusServiceUnavailable, ErrNoPublisher.Error())
		return
	}
	if err := box.p.Publish(r.Context(), topic, msg); err != nil {
		s.log.Warn("console publish failed", "topic", topic, "err", err)
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	s.log.Info("console published", "topic", topic, "bytes", len(msg), "from", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"topic": topic, "bytes": len(msg)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
