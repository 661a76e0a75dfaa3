package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Load implements mapstore.Loader with _mget.
func (s *Store) Load(ctx context.Context, key []byte) (value []byte, found bool, err error) {
	err = s.LoadAll(ctx, [][]byte{key}, func(_, v []byte) error {
		value, found = v, true
		return nil
	})
	return value, found, err
}

type mgetAnswer struct {
	Docs []struct {
		ID     string          `json:"_id"`
		Found  bool            `json:"found"`
		Source json.RawMessage `json:"_source"`
		Error  json.RawMessage `json:"error"`
	} `json:"docs"`
}

// LoadAll implements mapstore.AllLoader with _mget requests of at most MgetSize documents. A
// document in an index that does not exist is missing, not an error.
func (s *Store) LoadAll(ctx context.Context, keys [][]byte, fn func(key, value []byte) error) error {
	for len(keys) > 0 {
		n := min(len(keys), s.cfg.MgetSize)
		if err := s.mget(ctx, keys[:n], fn); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (s *Store) mget(ctx context.Context, keys [][]byte, fn func(key, value []byte) error) error {
	type ref struct {
		Index string `json:"_index"`
		ID    string `json:"_id"`
	}
	refs := make([]ref, 0, len(keys))
	asked := make([][]byte, 0, len(keys))
	for _, k := range keys {
		index, id, err := s.locate(k)
		if err != nil {
			continue // a key that cannot be stored is not in the store
		}
		refs = append(refs, ref{Index: index, ID: id})
		asked = append(asked, k)
	}
	if len(refs) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{"docs": refs})
	if err != nil {
		return fmt.Errorf("elasticsearch: _mget: %w", err)
	}
	status, out, err := s.do(ctx, http.MethodPost, "/_mget", body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return statusError(http.MethodPost, "/_mget", status, out)
	}
	var a mgetAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		return fmt.Errorf("%w: _mget answer is not JSON: %v (%s)", ErrBadResponse, err, snippet(out))
	}
	if len(a.Docs) != len(refs) {
		return fmt.Errorf("%w: _mget answer with %d documents for %d asked (%s)", ErrBadResponse, len(a.Docs), len(refs), snippet(out))
	}
	for i, d := range a.Docs {
		if d.ID != refs[i].ID {
			return fmt.Errorf("%w: _mget document %d has _id %q, want %q", ErrBadResponse, i, d.ID, refs[i].ID)
		}
		if len(d.Error) > 0 {
			if reason := describe(d.Error); !strings.HasPrefix(reason, "index_not_found_exception") {
				return fmt.Errorf("%w: _mget of %q: %s", ErrServer, d.ID, reason)
			}
			continue
		}
		if !d.Found {
			continue
		}
		if len(d.Source) == 0 {
			return fmt.Errorf("%w: _mget document %q found without _source", ErrBadResponse, d.ID)
		}
		v := []byte(d.Source)
		if s.cfg.Value != nil {
			if v, err = s.cfg.Value(asked[i], v); err != nil {
				return fmt.Errorf("elasticsearch: Value hook for %q: %w", d.ID, err)
			}
		}
		if err := fn(asked[i], v); err != nil {
			return err
		}
	}
	return nil
}

// LoadAllKeys implements mapstore.KeyLoader: it pages through every _id of the Store's indices
// (Indices) with a point in time and search_after, PageSize at a time, so memory stays bounded
// however many documents there are. The point in time is closed at the end.
func (s *Store) LoadAllKeys(ctx context.Context, fn func(key []byte) error) error {
	// A point in time sees what was refreshed: refresh first, so every stored key is listed.
	if err := s.Refresh(ctx); err != nil {
		return err
	}
	keepAlive := fmt.Sprintf("%dms", s.cfg.KeepAlive.Milliseconds())
	path := "/" + s.index.wildcard() + "/_pit?keep_alive=" + keepAlive
	status, out, err := s.do(ctx, http.MethodPost, path, nil)
	if err != nil {
		return err
	}
	if status == http.StatusNotFound {
		return nil // the index does not exist yet: no keys
	}
	if status != http.StatusOK {
		return statusError(http.MethodPost, path, status, out)
	}
	var pit struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &pit); err != nil || pit.ID == "" {
		return fmt.Errorf("%w: point in time answer without id (%s)", ErrBadResponse, snippet(out))
	}
	defer func() {
		// Closing frees the server's resources at once; on failure the point in time expires.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		body, _ := json.Marshal(map[string]string{"id": pit.ID})
		_, _, _ = s.do(cctx, http.MethodDelete, "/_pit", body)
	}()
	var after json.RawMessage
	for {
		req := map[string]any{
			"size":             s.cfg.PageSize,
			"_source":          false,
			"track_total_hits": false,
			"pit":              map[string]string{"id": pit.ID, "keep_alive": keepAlive},
			"sort":             []any{map[string]string{"_shard_doc": "asc"}},
		}
		if after != nil {
			req["search_after"] = after
		}
		body, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("elasticsearch: search: %w", err)
		}
		status, out, err := s.do(ctx, http.MethodPost, "/_search", body)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return statusError(http.MethodPost, "/_search", status, out)
		}
		var a struct {
			PitID string `json:"pit_id"`
			Hits  *struct {
				Hits []struct {
					ID   string          `json:"_id"`
					Sort json.RawMessage `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(out, &a); err != nil || a.Hits == nil {
			return fmt.Errorf("%w: search answer without hits (%s)", ErrBadResponse, snippet(out))
		}
		if a.PitID != "" {
			pit.ID = a.PitID
		}
		for _, h := range a.Hits.Hits {
			k, err := s.cfg.IDs.key(h.ID)
			if err != nil {
				return err
			}
			if err := fn(k); err != nil {
				return err
			}
		}
		if len(a.Hits.Hits) < s.cfg.PageSize {
			return nil
		}
		after = a.Hits.Hits[len(a.Hits.Hits)-1].Sort
		if len(after) == 0 {
			return fmt.Errorf("%w: search hit without sort values", ErrBadResponse)
		}
	}
}
