package elasticsearch

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	es8 "github.com/elastic/go-elasticsearch/v8"
)

// Defaults filled in by Config.WithDefaults.
const (
	DefaultAddress          = "http://127.0.0.1:9200"
	DefaultBulkBytes        = 5 << 20 // 5 MiB: Elastic's advice for a bulk request
	DefaultBulkWorkers      = 4
	DefaultBulkTries        = 8
	DefaultRetryInitial     = 100 * time.Millisecond
	DefaultRetryMax         = 5 * time.Second
	DefaultRequestTimeout   = 60 * time.Second
	DefaultPageSize         = 5000
	DefaultMgetSize         = 1000
	DefaultKeepAlive        = 2 * time.Minute
	DefaultTemplatePriority = 200
)

// Config configures a Store. Zero fields take the defaults above; New fills them in and
// validates the result.
type Config struct {
	// Addresses of the Elasticsearch nodes. Default DefaultAddress. Ignored when Client is set.
	Addresses []string
	// Client, if set, is the client to use (authentication, TLS, its own transport). The Store
	// then relies on that client's retry settings as well as its own; the client New makes has
	// them off, so that a 429 reaches the Store, which slows down.
	Client *es8.Client

	// Index names the index of the map's documents: a fixed name ("crashes"), or a pattern that
	// puts each document in the index of its time period: %Y year, %m month, %d day, %H hour, %W
	// week of the year starting on Monday (as strftime), %V ISO week with %G its year, %% a
	// percent sign. Socorro uses "socorro%Y%W". Required.
	Index string
	// KeyTime returns the time of a key, which chooses its index when Index is a pattern
	// (Socorro's crash IDs end with their date). Required with a pattern: every call for a key,
	// Load and Delete included, must find the index from the key alone. An error refuses the
	// entry for good.
	KeyTime func(key []byte) (time.Time, error)
	// Template is the name of the index template the Store installs (idempotently, before its
	// first write) so that every index it creates gets Settings and Mappings. Default "gridmap-"
	// and the literal part of Index. Indices created before the template keep their mapping.
	Template string
	// TemplatePriority is the priority of the index template. Elasticsearch refuses two templates
	// of the same priority whose patterns overlap ("socorro*" and "socorro_raw"): give each an
	// own priority then. Default 200.
	TemplatePriority int
	// Settings are the index settings of the template (JSON object), for example
	// {"number_of_shards":1,"number_of_replicas":0,"refresh_interval":"5s"}. nil: the server's
	// defaults.
	Settings json.RawMessage
	// Mappings are the mappings of the template (JSON object). A large document indexes much
	// faster with {"dynamic":false,"properties":{...}} naming only the fields that are searched:
	// the rest stays in _source. nil: dynamic mapping.
	Mappings json.RawMessage

	// IDs says how keys become _ids. Default IDRaw (the key itself).
	IDs IDEncoding
	// Document maps a value to the JSON object to index, for example to leave a binary dump out
	// of it. nil: the value itself, which must be a JSON object. An error, or a result that is
	// not a JSON object, refuses the entry for good (mapstore.ErrRejected).
	Document func(key, value []byte) ([]byte, error)
	// Value maps a document's _source back to the value Load returns. nil: the _source bytes as
	// stored (Elasticsearch keeps the document's bytes), so a value stored without a Document
	// hook loads back unchanged.
	Value func(key, source []byte) ([]byte, error)

	// BulkBytes bounds the body of one bulk request; a request holds at least one document.
	// Default 5 MiB. Keep it below the server's http.max_content_length (100 MB by default).
	BulkBytes int
	// BulkWorkers is how many bulk requests the Store has in flight at once, over all its calls.
	// Default 4.
	BulkWorkers int
	// BulkTries is how many times one call sends the documents the server refused with a
	// temporary error (429 too many requests, 5xx for one document) before the call fails
	// (write-behind then retries the whole batch later). Default 8.
	BulkTries int
	// RetryInitial is the first wait after a temporary refusal; it doubles with each further one
	// up to RetryMax. A 429 also slows down every bulk request of the Store (the same waits)
	// until requests succeed again. Defaults 100ms and 5s.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// RequestTimeout bounds one HTTP request (a call's context can end it sooner). Default 60s.
	RequestTimeout time.Duration
	// Refresh is the bulk requests' refresh parameter: "" (the default: documents become
	// searchable at the next refresh; Load and LoadAll see them at once anyway), "wait_for" or
	// "true".
	Refresh string

	// PageSize is how many _ids one page of LoadAllKeys fetches. Default 5000.
	PageSize int
	// MgetSize is how many documents one _mget request of LoadAll fetches. Default 1000.
	MgetSize int
	// KeepAlive is how long the point in time of LoadAllKeys lives between two pages.
	// Default 2 minutes.
	KeepAlive time.Duration

	// Logger receives the documents refused for good (Warn) and temporary refusals (Debug). nil
	// discards.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if len(c.Addresses) == 0 && c.Client == nil {
		c.Addresses = []string{DefaultAddress}
	}
	if c.Template == "" && c.Index != "" {
		if p, err := parseIndex(c.Index); err == nil {
			c.Template = "gridmap-" + p.base()
		}
	}
	set := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setD := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	set(&c.TemplatePriority, DefaultTemplatePriority)
	set(&c.BulkBytes, DefaultBulkBytes)
	set(&c.BulkWorkers, DefaultBulkWorkers)
	set(&c.BulkTries, DefaultBulkTries)
	set(&c.PageSize, DefaultPageSize)
	set(&c.MgetSize, DefaultMgetSize)
	setD(&c.RetryInitial, DefaultRetryInitial)
	setD(&c.RetryMax, DefaultRetryMax)
	setD(&c.RequestTimeout, DefaultRequestTimeout)
	setD(&c.KeepAlive, DefaultKeepAlive)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (meant after WithDefaults) in one error wrapping
// ErrInvalidConfig, or nil.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if p, err := parseIndex(c.Index); err != nil {
		bad("Index: %v", err)
	} else if p.timed && c.KeyTime == nil {
		bad("Index %q is a pattern: KeyTime is required", c.Index)
	}
	if len(c.Addresses) == 0 && c.Client == nil {
		bad("Addresses: none and no Client")
	}
	if c.Template == "" {
		bad("Template is empty")
	}
	if c.Settings != nil && !isObject(c.Settings) {
		bad("Settings is not a JSON object")
	}
	if c.Mappings != nil && !isObject(c.Mappings) {
		bad("Mappings is not a JSON object")
	}
	if c.IDs > IDBase64 {
		bad("IDs: unknown encoding %d", c.IDs)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"BulkBytes", c.BulkBytes}, {"BulkWorkers", c.BulkWorkers}, {"BulkTries", c.BulkTries}, {"PageSize", c.PageSize}, {"MgetSize", c.MgetSize}} {
		if f.v < 1 {
			bad("%s is %d, want at least 1", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"RetryInitial", c.RetryInitial}, {"RetryMax", c.RetryMax}, {"RequestTimeout", c.RequestTimeout}, {"KeepAlive", c.KeepAlive}} {
		if f.v <= 0 {
			bad("%s is %v, want more than 0", f.name, f.v)
		}
	}
	if c.RetryMax < c.RetryInitial {
		bad("RetryMax %v is below RetryInitial %v", c.RetryMax, c.RetryInitial)
	}
	switch c.Refresh {
	case "", "false", "true", "wait_for":
	default:
		bad("Refresh %q: want \"\", \"true\" or \"wait_for\"", c.Refresh)
	}
	if c.Logger == nil {
		bad("Logger is nil")
	}
	return errors.Join(errs...)
}

// isObject reports whether b is one valid JSON object.
func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return json.Valid(b)
		}
		return false
	}
	return false
}
