package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
)

// Query selects documents for Find and Count: every Match term and Query must match.
type Query struct {
	// Match maps fields to the exact value each must have (term queries on keyword, numeric or
	// date fields of the mapping).
	Match map[string]any
	// Query is an Elasticsearch query object of the caller's, for example a range on a date.
	Query json.RawMessage
	// Size is how many documents Find returns (default 10), or how many values Count returns
	// (default 10).
	Size int
	// Sort is the sort of Find, as Elasticsearch takes it, for example
	// [{"date_processed":"desc"}]. nil: by relevance.
	Sort json.RawMessage
}

// Hit is one document Find found.
type Hit struct {
	Key    []byte
	Index  string
	Source json.RawMessage
}

// Bucket is one value of a field and how many documents have it.
type Bucket struct {
	Value string
	Count int64
}

// body returns the search body of q with the extra fields of a request.
func (q Query) body(extra map[string]any) ([]byte, error) {
	var must []any
	keys := make([]string, 0, len(q.Match))
	for f := range q.Match {
		keys = append(keys, f)
	}
	slices.Sort(keys)
	for _, f := range keys {
		must = append(must, map[string]any{"term": map[string]any{f: q.Match[f]}})
	}
	if q.Query != nil {
		must = append(must, q.Query)
	}
	req := map[string]any{"query": map[string]any{"match_all": map[string]any{}}}
	if len(must) > 0 {
		req["query"] = map[string]any{"bool": map[string]any{"filter": must}}
	}
	for k, v := range extra {
		req[k] = v
	}
	return json.Marshal(req)
}

// search runs one search on the Store's indices.
func (s *Store) search(ctx context.Context, body []byte, answer any) error {
	path := "/" + s.index.wildcard() + "/_search?ignore_unavailable=true&allow_no_indices=true"
	status, out, err := s.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return statusError(http.MethodPost, path, status, out)
	}
	if err := json.Unmarshal(out, answer); err != nil {
		return fmt.Errorf("%w: search answer: %v (%s)", ErrBadResponse, err, snippet(out))
	}
	return nil
}

// Find returns the documents that match q (at most q.Size) and how many match in all. It sees
// the documents refreshed so far (within the index's refresh interval of being stored).
func (s *Store) Find(ctx context.Context, q Query) (hits []Hit, total int64, err error) {
	extra := map[string]any{"size": cmpOr(q.Size, 10), "track_total_hits": true}
	if q.Sort != nil {
		extra["sort"] = q.Sort
	}
	body, err := q.body(extra)
	if err != nil {
		return nil, 0, fmt.Errorf("elasticsearch: Find: %w", err)
	}
	var a struct {
		Hits *struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
			Hits []struct {
				Index  string          `json:"_index"`
				ID     string          `json:"_id"`
				Source json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := s.search(ctx, body, &a); err != nil {
		return nil, 0, err
	}
	if a.Hits == nil {
		return nil, 0, fmt.Errorf("%w: search answer without hits", ErrBadResponse)
	}
	for _, h := range a.Hits.Hits {
		k, err := s.cfg.IDs.key(h.ID)
		if err != nil {
			return nil, 0, err
		}
		hits = append(hits, Hit{Key: k, Index: h.Index, Source: h.Source})
	}
	return hits, a.Hits.Total.Value, nil
}

// Count returns the q.Size most frequent values of field among the documents that match q, most
// frequent first, with a terms aggregation (the field must be a keyword, numeric or date field
// of the mapping), and how many documents match in all.
func (s *Store) Count(ctx context.Context, q Query, field string) (buckets []Bucket, total int64, err error) {
	body, err := q.body(map[string]any{
		"size":             0,
		"track_total_hits": true,
		"aggs":             map[string]any{"by": map[string]any{"terms": map[string]any{"field": field, "size": cmpOr(q.Size, 10)}}},
	})
	if err != nil {
		return nil, 0, fmt.Errorf("elasticsearch: Count: %w", err)
	}
	var a struct {
		Hits *struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
		} `json:"hits"`
		Aggregations struct {
			By *struct {
				Buckets []struct {
					Key         any    `json:"key"`
					KeyAsString string `json:"key_as_string"`
					DocCount    int64  `json:"doc_count"`
				} `json:"buckets"`
			} `json:"by"`
		} `json:"aggregations"`
	}
	if err := s.search(ctx, body, &a); err != nil {
		return nil, 0, err
	}
	if a.Hits == nil {
		return nil, 0, fmt.Errorf("%w: search answer without hits", ErrBadResponse)
	}
	if a.Aggregations.By == nil {
		return nil, a.Hits.Total.Value, nil // no index yet: no aggregation
	}
	for _, b := range a.Aggregations.By.Buckets {
		v := b.KeyAsString
		if v == "" {
			v = fmt.Sprint(b.Key)
		}
		buckets = append(buckets, Bucket{Value: v, Count: b.DocCount})
	}
	return buckets, a.Hits.Total.Value, nil
}

func cmpOr(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

// Refresh makes every document stored so far visible to Find and Count (which otherwise see
// them within the indices' refresh interval). Load, LoadAll and LoadAllKeys need no refresh.
func (s *Store) Refresh(ctx context.Context) error {
	path := "/" + s.index.wildcard() + "/_refresh?ignore_unavailable=true&allow_no_indices=true"
	status, out, err := s.do(ctx, http.MethodPost, path, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusNotFound {
		return statusError(http.MethodPost, path, status, out)
	}
	return nil
}
