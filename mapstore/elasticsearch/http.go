package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// do sends one request (bounded by Config.RequestTimeout) and returns the answer's status and
// body. A request that gets no answer is ErrUnavailable; a product check that fails (the server
// is not Elasticsearch) is ErrBadResponse. Any HTTP status is returned as is: the caller judges.
func (s *Store) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("elasticsearch: %s %s: %w", method, path, err)
	}
	if body != nil {
		if strings.HasPrefix(path, "/_bulk") {
			req.Header.Set("Content-Type", "application/x-ndjson")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	res, err := s.client.Perform(req)
	if err != nil {
		if strings.Contains(err.Error(), "not Elasticsearch") {
			return 0, nil, fmt.Errorf("%w: %s %s: %v", ErrBadResponse, method, path, err)
		}
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, ctx.Err())
		}
		return 0, nil, fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
			return 0, nil, fmt.Errorf("%w: %s %s: reading the answer: %v", ErrUnavailable, method, path, err)
		}
		return 0, nil, fmt.Errorf("%w: %s %s: reading the answer: %v", ErrBadResponse, method, path, err)
	}
	return res.StatusCode, out, nil
}

// statusError describes a refused request.
func statusError(method, path string, status int, body []byte) error {
	return fmt.Errorf("%w: %s %s: HTTP %d: %s", ErrServer, method, path, status, errorReason(body))
}

// errorReason extracts the "error" of an answer, or a snippet of a body that has none.
func errorReason(body []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Error) > 0 {
		return describe(e.Error)
	}
	return snippet(body)
}
