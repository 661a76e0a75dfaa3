package generator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInvalidConfig is returned by New for an unusable Config.
var ErrInvalidConfig = errors.New("generator: invalid config")

// Config configures a Driver. Zero fields take the documented defaults.
type Config struct {
	// Targets are the nodes' base URLs ("http://127.0.0.1:8080"); reports go to
	// <target>/submit, round-robin. Required.
	Targets []string
	// Dumps are the real minidumps reports are built from, chosen at random. Required.
	Dumps [][]byte
	// Rate is the number of reports sent per second. Default 1; 0 is not allowed here (use
	// SetRate(0) to pause a running driver).
	Rate float64
	// Concurrency bounds the requests in flight; when all are busy the driver waits, so a slow
	// cluster lowers the rate rather than piling up requests. Default 16.
	Concurrency int
	// AnnotationSizes and DumpSizes are the size distributions. Defaults AnnotationSizes and
	// DumpSizes.
	AnnotationSizes, DumpSizes *Sizes
	// Seed seeds the choices (sizes, products, encodings). Default 1.
	Seed uint64
	// Attempts bounds the posts of one report: a collector that answers 503 (overloaded) is
	// sent the same report again after its Retry-After, as crash clients keep a report they
	// could not send, and the whole driver sends nothing new until then (back-off). Default 5;
	// a report refused that many times counts as Failed.
	Attempts int
	// Client sends the requests. Default an http.Client with a 2-minute timeout.
	Client *http.Client
	// Logger logs failed posts at debug level. Default slog.Default().
	Logger *slog.Logger
}

// Stats counts what a driver sent and what the collectors answered.
type Stats struct {
	Started   uint64 // requests begun
	Sent      uint64 // requests completed (answered or failed)
	Accepted  uint64 // answered CrashID=bp-...
	Discarded uint64 // answered Discarded=... (throttled or malformed)
	Failed    uint64 // no answer, or an answer other than the two above (500, 413, ...), or 503 on every attempt
	Busy      uint64 // 503 answers (the collector's in-flight budget was full); the report was sent again
	Bytes     uint64 // request bodies sent, as sent (compressed or not)
}

// Driver simulates crash clients: it posts generated reports to the targets at a set rate, half
// of them gzipped and half with JSON annotations, like the real clients' mix. It keeps every
// answered crash ID, so a test can check each one reached the store.
type Driver struct {
	cfg  Config
	rate atomic.Uint64 // math.Float64bits of reports per second
	wake chan struct{} // SetRate wakes a driver waiting at rate 0

	mu       sync.Mutex
	rand     *rand.Rand
	next     int // round-robin position
	answered []string

	started, sent, accepted, discarded, failed, busy, bytes atomic.Uint64
	// notBefore is when the driver may send a new report again after a 503 (unix nanoseconds).
	notBefore atomic.Int64
}

// New validates cfg, fills in its defaults and returns a Driver.
func New(cfg Config) (*Driver, error) {
	var errs []error
	if len(cfg.Targets) == 0 {
		errs = append(errs, fmt.Errorf("%w: no Targets", ErrInvalidConfig))
	}
	if len(cfg.Dumps) == 0 {
		errs = append(errs, fmt.Errorf("%w: no Dumps", ErrInvalidConfig))
	}
	if cfg.Rate < 0 || cfg.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("%w: negative Rate %v or Concurrency %d", ErrInvalidConfig, cfg.Rate, cfg.Concurrency))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Rate == 0 {
		cfg.Rate = 1
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.AnnotationSizes == nil {
		cfg.AnnotationSizes = &AnnotationSizes
	}
	if cfg.DumpSizes == nil {
		cfg.DumpSizes = &DumpSizes
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 2 * time.Minute}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Driver{cfg: cfg, wake: make(chan struct{}, 1), rand: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed))}
	d.rate.Store(math.Float64bits(cfg.Rate))
	return d, nil
}

// SetRate changes the rate (reports per second) of a running driver; 0 pauses it. Safe to call
// from any goroutine.
func (d *Driver) SetRate(perSecond float64) {
	if perSecond < 0 {
		perSecond = 0
	}
	d.rate.Store(math.Float64bits(perSecond))
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Rate returns the current rate in reports per second.
func (d *Driver) Rate() float64 { return math.Float64frombits(d.rate.Load()) }

// Stats returns the counts so far.
func (d *Driver) Stats() Stats {
	return Stats{Started: d.started.Load(), Sent: d.sent.Load(), Accepted: d.accepted.Load(), Discarded: d.discarded.Load(),
		Failed: d.failed.Load(), Busy: d.busy.Load(), Bytes: d.bytes.Load()}
}

// Answered returns a copy of the crash IDs the collectors answered, in answer order.
func (d *Driver) Answered() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.answered...)
}

// Run sends reports until ctx ends, then waits for the requests in flight to be answered (a
// client does not drop an upload because the generator was told to stop; each request is bounded
// by the Client's timeout) and returns ctx.Err(). The caller owns the goroutine that runs it.
func (d *Driver) Run(ctx context.Context) error {
	slots := make(chan struct{}, d.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	var last time.Time // when the previous report was due; zero before the first
	for {
		rate := d.Rate()
		if rate == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.wake:
				continue
			}
		}
		// The next report is due one interval after the previous one, at the current rate;
		// a driver more than a second behind (a slow cluster) starts again from now rather
		// than bursting to catch up.
		now := time.Now()
		if nb := time.Unix(0, d.notBefore.Load()); nb.After(now) {
			// A collector asked for a pause (503 Retry-After): send nothing new until then.
			t := time.NewTimer(nb.Sub(now))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			last = time.Time{} // start pacing again from now, without a burst to catch up
			continue
		}
		due := now
		if !last.IsZero() {
			due = last.Add(time.Duration(float64(time.Second) / rate))
			if now.Sub(due) > time.Second {
				due = now
			}
		}
		if wait := due.Sub(now); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-d.wake: // the rate changed: compute the due time again
				t.Stop()
				continue
			case <-t.C:
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case slots <- struct{}{}:
		}
		if time.Unix(0, d.notBefore.Load()).After(time.Now()) {
			<-slots // a 503 came back while this report waited for its turn: pause first
			continue
		}
		last = due
		target, rep, asJSON, gz, err := d.nextReport()
		if err != nil {
			<-slots
			return err
		}
		d.started.Add(1)
		wg.Go(func() {
			defer func() { <-slots }()
			d.post(context.WithoutCancel(ctx), target, rep, asJSON, gz)
		})
	}
}

func (d *Driver) nextReport() (string, Report, bool, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	target := d.cfg.Targets[d.next%len(d.cfg.Targets)]
	d.next++
	base := d.cfg.Dumps[d.rand.IntN(len(d.cfg.Dumps))]
	rep, err := NewReport(d.rand, base, d.cfg.AnnotationSizes.Sample(d.rand), d.cfg.DumpSizes.Sample(d.rand))
	return target, rep, d.rand.IntN(2) == 0, d.rand.IntN(2) == 0, err
}

func (d *Driver) post(ctx context.Context, target string, rep Report, asJSON, gz bool) {
	defer d.sent.Add(1)
	ct, body, err := Encode(rep, asJSON, gz)
	if err != nil {
		d.fail(target, err)
		return
	}
	for attempt := 1; ; attempt++ {
		retryAfter, err := d.send(ctx, target, ct, body, gz)
		if err == nil {
			return
		}
		if retryAfter == 0 || attempt == d.cfg.Attempts {
			d.fail(target, err)
			return
		}
		// 503: the collector is overloaded. Pause the whole driver and send this report
		// again once the collector's Retry-After has passed.
		until := time.Now().Add(retryAfter)
		for {
			old := d.notBefore.Load()
			if old >= until.UnixNano() || d.notBefore.CompareAndSwap(old, until.UnixNano()) {
				break
			}
		}
		d.busy.Add(1)
		t := time.NewTimer(retryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			d.fail(target, ctx.Err())
			return
		case <-t.C:
		}
	}
}

// send posts one encoded report. It returns nil once the collector answered (accepted or
// discarded), and for a 503 the pause its Retry-After asks for (1s without one) with the error.
func (d *Driver) send(ctx context.Context, target, ct string, body []byte, gz bool) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(target, "/")+"/submit", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", "gridmap-socorro-generator/1.0")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	d.bytes.Add(uint64(len(body)))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	text := strings.TrimSpace(string(answer))
	switch id, ok := strings.CutPrefix(text, "CrashID=bp-"); {
	case resp.StatusCode == http.StatusOK && ok:
		d.accepted.Add(1)
		d.mu.Lock()
		d.answered = append(d.answered, id)
		d.mu.Unlock()
		return 0, nil
	case strings.HasPrefix(text, "Discarded="):
		d.discarded.Add(1)
		return 0, nil
	case resp.StatusCode == http.StatusServiceUnavailable:
		return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("status 503: %.100q", text)
	}
	return 0, fmt.Errorf("status %d: %.100q", resp.StatusCode, text)
}

// retryAfter reads a Retry-After header in seconds (an HTTP date is not used by collectors);
// 1s when it is missing or unreadable, at most a minute.
func retryAfter(h string) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || secs <= 0 {
		return time.Second
	}
	return time.Duration(min(secs, 60)) * time.Second
}

func (d *Driver) fail(target string, err error) {
	d.failed.Add(1)
	d.cfg.Logger.Debug("generator: post failed", "target", target, "err", err)
}
