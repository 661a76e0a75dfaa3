package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	es8 "github.com/elastic/go-elasticsearch/v8"

	"github.com/gridmap/gridmap/mapstore"
)

var (
	_ mapstore.BatchStore = (*Store)(nil)
	_ mapstore.Loader     = (*Store)(nil)
	_ mapstore.AllLoader  = (*Store)(nil)
	_ mapstore.KeyLoader  = (*Store)(nil)
)

// Store is a mapstore backend on Elasticsearch: one document per key, its _id the key, in the
// index (or the index of the key's time period) named by Config.Index. Use one Store per map. It
// is safe for concurrent use.
type Store struct {
	cfg    Config
	client *es8.Client
	index  indexPattern
	log    *slog.Logger
	slots  chan struct{} // bulk requests in flight
	pace   *pacer

	tmplMu sync.Mutex
	tmplOK bool // the index template is installed
}

// New returns a Store for cfg (defaults filled in, then validated). It does not contact the
// server: the index template is installed before the first write, so a map can be configured
// while Elasticsearch is still starting.
func New(cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, _ := parseIndex(cfg.Index) // Validate parsed it
	s := &Store{cfg: cfg, client: cfg.Client, index: p, log: cfg.Logger,
		slots: make(chan struct{}, cfg.BulkWorkers), pace: &pacer{initial: cfg.RetryInitial, max: cfg.RetryMax}}
	if s.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2 * cfg.BulkWorkers
		c, err := es8.NewClient(es8.Config{Addresses: cfg.Addresses, Transport: tr, DisableRetry: true})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		s.client = c
	}
	return s, nil
}

// Client returns the Elasticsearch client the Store uses, for requests of the application's own.
func (s *Store) Client() *es8.Client { return s.client }

// IndexOf returns the index that holds key's document.
func (s *Store) IndexOf(key []byte) (string, error) {
	index, _, err := s.locate(key)
	return index, err
}

// Indices returns an index expression covering every index of the Store: the index name, or the
// pattern with a * for each time verb ("socorro*"), which may match other indices too.
func (s *Store) Indices() string { return s.index.wildcard() }

// locate returns the index and _id of key.
func (s *Store) locate(key []byte) (index, id string, err error) {
	id, err = s.cfg.IDs.id(key)
	if err != nil {
		return "", "", err
	}
	if !s.index.timed {
		return s.index.name(time.Time{}), id, nil
	}
	t, err := s.cfg.KeyTime(key)
	if err != nil {
		return "", "", fmt.Errorf("KeyTime: %w", err)
	}
	return s.index.name(t), id, nil
}

// EnsureTemplate installs the Store's index template (settings and mappings) if it has not been
// installed yet. The writes call it; call it to find a bad mapping before the first write.
func (s *Store) EnsureTemplate(ctx context.Context) error {
	s.tmplMu.Lock()
	defer s.tmplMu.Unlock()
	if s.tmplOK {
		return nil
	}
	tmpl := map[string]any{}
	if s.cfg.Settings != nil {
		tmpl["settings"] = s.cfg.Settings
	}
	if s.cfg.Mappings != nil {
		tmpl["mappings"] = s.cfg.Mappings
	}
	body, err := json.Marshal(map[string]any{
		"index_patterns": []string{s.index.wildcard()},
		"priority":       s.cfg.TemplatePriority,
		"template":       tmpl,
		"_meta":          map[string]string{"created_by": "gridmap mapstore/elasticsearch"},
	})
	if err != nil {
		return fmt.Errorf("%w: index template: %v", ErrInvalidConfig, err)
	}
	path := "/_index_template/" + s.cfg.Template
	status, out, err := s.do(ctx, http.MethodPut, path, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return statusError(http.MethodPut, path, status, out)
	}
	s.tmplOK = true
	return nil
}

// Store implements mapstore.Store: it indexes value's document under key.
func (s *Store) Store(ctx context.Context, key, value []byte) error {
	return s.StoreAll(ctx, [][]byte{key}, [][]byte{value})
}

// Delete implements mapstore.Store.
func (s *Store) Delete(ctx context.Context, key []byte) error {
	return s.DeleteAll(ctx, [][]byte{key})
}

// StoreAll implements mapstore.BatchStore with bulk requests: see Config.BulkBytes,
// BulkWorkers and BulkTries. A key that cannot be an _id or be placed in an index, a value the
// Document hook refuses or that is not a JSON object, and a document the server refuses with a
// 4xx (a mapping error) are refused for good: StoreAll stores every other document and returns a
// *mapstore.RejectedError listing them. Any other error leaves the call to be retried.
func (s *Store) StoreAll(ctx context.Context, keys, values [][]byte) error {
	if len(keys) != len(values) {
		return fmt.Errorf("elasticsearch: StoreAll with %d keys and %d values", len(keys), len(values))
	}
	if err := s.EnsureTemplate(ctx); err != nil {
		return err
	}
	var rej mapstore.RejectedError
	ops := make([]op, 0, len(keys))
	for i, k := range keys {
		o, err := s.indexOp(k, values[i])
		if err != nil {
			rej.Keys = append(rej.Keys, bytes.Clone(k))
			rej.Reasons = append(rej.Reasons, err)
			continue
		}
		ops = append(ops, o)
	}
	return s.finish(ctx, ops, &rej)
}

// DeleteAll implements mapstore.BatchStore with bulk requests; deleting a missing document (or
// from a missing index) is not an error.
func (s *Store) DeleteAll(ctx context.Context, keys [][]byte) error {
	var rej mapstore.RejectedError
	ops := make([]op, 0, len(keys))
	for _, k := range keys {
		index, id, err := s.locate(k)
		if err != nil {
			// Such a key was never stored: there is nothing to delete.
			continue
		}
		ops = append(ops, op{key: k, id: id, line: appendAction(nil, "delete", index, id)})
	}
	return s.finish(ctx, ops, &rej)
}

// finish sends ops and reports the rejected keys, if any.
func (s *Store) finish(ctx context.Context, ops []op, rej *mapstore.RejectedError) error {
	if len(ops) > 0 {
		if err := s.bulk(ctx, ops, rej); err != nil {
			return err
		}
	}
	if len(rej.Keys) == 0 {
		return nil
	}
	s.log.Warn("elasticsearch: documents refused for good (not retried)", "index", s.cfg.Index, "documents", len(rej.Keys), "err", rej)
	return rej
}

// indexOp encodes the bulk operation that indexes value under key.
func (s *Store) indexOp(key, value []byte) (op, error) {
	index, id, err := s.locate(key)
	if err != nil {
		return op{}, err
	}
	doc := value
	if s.cfg.Document != nil {
		if doc, err = s.cfg.Document(key, value); err != nil {
			return op{}, fmt.Errorf("the Document hook: %w", err)
		}
	}
	line := make([]byte, 0, len(doc)+len(index)+len(id)+48)
	line = appendAction(line, "index", index, id)
	if line, err = appendDoc(line, doc); err != nil {
		return op{}, err
	}
	return op{key: key, id: id, line: line}, nil
}
