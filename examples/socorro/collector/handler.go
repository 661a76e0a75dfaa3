package collector

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Handler. Zero fields take the documented defaults (WithDefaults).
type Config struct {
	// Store keeps accepted crashes. Required.
	Store Store
	// Rules are the throttle rules, first match decides. Default AcceptAll.
	Rules []Rule
	// MaxBytes is the largest body accepted, after decompression, in bytes. Default
	// DefaultMaxBytes (25 MiB).
	MaxBytes int64
	// MaxInFlightBytes bounds the report bytes the handler holds at once (submissions being
	// read, parsed and saved; a submission counts its Content-Length at arrival and its decoded
	// size once parsed). A submission that does not fit is answered 503 with Retry-After
	// (RetryAfter) without being parsed, so overload becomes back-pressure on the clients
	// instead of a grid starved by more bulk copies than it can make (admission.go). One
	// submission is admitted whenever none is in flight. Default DefaultMaxInFlightBytes
	// (64 MiB); negative: no limit.
	MaxInFlightBytes int64
	// RetryAfter is the Retry-After of a 503. Default DefaultRetryAfter (1s).
	RetryAfter time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Random supplies the random bytes of crash IDs. Default crypto/rand.Reader.
	Random io.Reader
	// Sample supplies the throttler's sampling. Default a generator seeded from Random.
	Sample *mrand.Rand
	// Logger logs each decision at debug level and store failures at error level. Default
	// slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Rules == nil {
		c.Rules = AcceptAll
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Random == nil {
		c.Random = rand.Reader
	}
	if c.Sample == nil {
		var seed [32]byte
		_, _ = io.ReadFull(rand.Reader, seed[:])
		c.Sample = mrand.New(mrand.NewChaCha8(seed))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, fmt.Errorf("%w: Store is required", ErrInvalidConfig))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxBytes %d is negative", ErrInvalidConfig, c.MaxBytes))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("%w: RetryAfter %v is negative", ErrInvalidConfig, c.RetryAfter))
	}
	return errors.Join(errs...)
}

// Handler serves POST /submit.
type Handler struct {
	cfg Config

	mu        sync.Mutex // guards throttle (its random source)
	throttler *Throttler

	admit   *budget // nil: no limit
	refused atomic.Uint64
}

// DefaultMaxInFlightBytes is the default of Config.MaxInFlightBytes.
const DefaultMaxInFlightBytes = 64 << 20

// NewHandler fills in cfg's defaults, validates it and returns the handler.
func NewHandler(cfg Config) (*Handler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := NewThrottler(cfg.Rules, cfg.Sample)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, throttler: t}
	if cfg.MaxInFlightBytes > 0 {
		h.admit = &budget{limit: cfg.MaxInFlightBytes}
	}
	return h, nil
}

// Refused counts the submissions answered 503 because the in-flight budget was full.
func (h *Handler) Refused() uint64 { return h.refused.Load() }

// InFlightBytes returns the report bytes the handler holds now (0 without a limit).
func (h *Handler) InFlightBytes() int64 {
	if h.admit == nil {
		return 0
	}
	return h.admit.bytes()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Discarded=method_not_allowed", http.StatusMethodNotAllowed)
		return
	}
	var charge int64 // bytes charged to the in-flight budget
	if h.admit != nil {
		charge = r.ContentLength
		if charge < 0 {
			charge = chunkedCharge
		}
		if !h.admit.acquire(charge) {
			h.refused.Add(1)
			h.cfg.Logger.Debug("collector: overloaded, submission refused", "bytes", r.ContentLength, "in_flight", h.admit.bytes())
			refuse(w, r, h.cfg.RetryAfter, h.cfg.MaxBytes)
			return
		}
		defer func() { h.admit.release(charge) }()
	}
	now := h.cfg.Now().UTC()
	sub, err := Parse(r.Header, r.ContentLength, r.Body, h.cfg.MaxBytes)
	var m *MalformedError
	switch {
	case errors.As(err, &m):
		h.cfg.Logger.Debug("collector: malformed submission", "reason", m.Reason, "err", err)
		answer(w, http.StatusBadRequest, "Discarded=malformed_"+string(m.Reason))
		return
	case errors.Is(err, ErrTooLarge):
		answer(w, http.StatusRequestEntityTooLarge, "Discarded=too_large")
		return
	case err != nil:
		answer(w, http.StatusBadRequest, "Discarded=malformed_"+string(InvalidPayloadStructure))
		return
	}

	if h.admit != nil {
		if more := decodedSize(sub) - charge; more > 0 {
			h.admit.grow(more)
			defer h.admit.release(more)
		}
	}

	h.mu.Lock()
	result, rule := h.throttler.Throttle(sub.Annotations)
	h.mu.Unlock()
	if result == Reject {
		h.cfg.Logger.Debug("collector: rejected", "rule", rule)
		answer(w, http.StatusOK, "Discarded=rule_"+rule)
		return
	}

	// A client (or a resubmission tool) that sends a crash ID keeps it.
	id, ok := sub.Annotations["uuid"]
	if ok && !ValidCrashID(id) {
		answer(w, http.StatusBadRequest, "Discarded=malformed_"+string(InvalidUUID))
		return
	}
	if !ok {
		id, err = NewCrashID(h.cfg.Random, now, result)
		if err != nil {
			h.cfg.Logger.Error("collector: crash ID", "err", err)
			answer(w, http.StatusInternalServerError, "Error=crash_id")
			return
		}
		sub.Annotations["uuid"] = id
	}

	crash := &Crash{
		ID:          id,
		Submitted:   now,
		Annotations: sub.Annotations,
		Dumps:       sub.Dumps,
		Metadata: Metadata{
			Payload:        sub.Payload,
			Compressed:     sub.Compressed,
			PayloadSize:    sub.PayloadSize,
			DumpChecksums:  checksums(sub.Dumps),
			UserAgent:      r.UserAgent(),
			ThrottleRule:   rule,
			ThrottleResult: result,
			CollectorNotes: sub.Notes,
		},
	}
	if err := h.cfg.Store.Save(r.Context(), crash); err != nil {
		if errors.Is(err, ErrStoreFull) {
			// The body is read already: answer at once.
			h.refused.Add(1)
			h.cfg.Logger.Warn("collector: store full, submission refused", "crash_id", id, "err", err)
			refuse(w, r, h.cfg.RetryAfter, h.cfg.MaxBytes)
			return
		}
		h.cfg.Logger.Error("collector: store failed", "crash_id", id, "err", err)
		answer(w, http.StatusInternalServerError, "Error=store_failed")
		return
	}
	h.cfg.Logger.Debug("collector: accepted", "crash_id", id, "rule", rule, "result", result)
	answer(w, http.StatusOK, "CrashID=bp-"+id)
}

func answer(w http.ResponseWriter, status int, body string) {
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}

// checksums returns the SHA-256 of each dump in hex, as the processor checks them.
func checksums(dumps map[string][]byte) map[string]string {
	out := make(map[string]string, len(dumps))
	for name, d := range dumps {
		sum := sha256.Sum256(d)
		out[name] = hex.EncodeToString(sum[:])
	}
	return out
}
