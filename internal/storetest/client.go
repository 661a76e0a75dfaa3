package storetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

var (
	_ mapstore.BatchStore = (*Client)(nil)
	_ mapstore.Loader     = (*Client)(nil)
	_ mapstore.AllLoader  = (*Client)(nil)
	_ mapstore.KeyLoader  = (*Client)(nil)
)

// Client is a mapstore backend that calls a Server over HTTP. Every call honours its context
// (cancellation and deadline end the request). It is safe for concurrent use.
type Client struct {
	url string
	hc  *http.Client
}

// NewClient returns a client of the server at baseURL (for example httptest.Server.URL). It
// has a connection pool of its own; Close releases it.
func NewClient(baseURL string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &Client{url: strings.TrimSuffix(baseURL, "/"), hc: &http.Client{Transport: tr}}
}

// Close closes the client's idle connections. Calls after Close still work (they dial anew).
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// call posts body to /op and returns the answer's body. A store that is down yields an error
// matching memstore.ErrDown, any other store error one matching ErrRemote.
func (c *Client) call(ctx context.Context, op string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/"+op, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("storetest: %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("storetest: %s: %w", op, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("storetest: %s: read answer: %w", op, err)
	}
	msg := strings.TrimSpace(string(out))
	switch resp.StatusCode {
	case http.StatusOK:
		return out, nil
	case http.StatusServiceUnavailable:
		return nil, fmt.Errorf("storetest: %s: %s: %w", op, msg, memstore.ErrDown)
	case http.StatusBadRequest:
		return nil, fmt.Errorf("%w: %s: %s", ErrProtocol, op, msg)
	default:
		return nil, fmt.Errorf("%w: %s: %s (HTTP %d)", ErrRemote, op, msg, resp.StatusCode)
	}
}

// Store implements mapstore.Store.
func (c *Client) Store(ctx context.Context, key, value []byte) error {
	_, err := c.call(ctx, "store", appendField(appendField(nil, key), value))
	return err
}

// Delete implements mapstore.Store.
func (c *Client) Delete(ctx context.Context, key []byte) error {
	_, err := c.call(ctx, "delete", appendField(nil, key))
	return err
}

// StoreAll implements mapstore.BatchStore.
func (c *Client) StoreAll(ctx context.Context, keys, values [][]byte) error {
	if len(keys) != len(values) {
		return fmt.Errorf("storetest: StoreAll with %d keys and %d values", len(keys), len(values))
	}
	n := 0
	for i := range keys {
		n += len(keys[i]) + len(values[i]) + 20
	}
	body := make([]byte, 0, n)
	for i := range keys {
		body = appendField(appendField(body, keys[i]), values[i])
	}
	_, err := c.call(ctx, "storeall", body)
	return err
}

// DeleteAll implements mapstore.BatchStore.
func (c *Client) DeleteAll(ctx context.Context, keys [][]byte) error {
	_, err := c.call(ctx, "deleteall", appendFields(keys))
	return err
}

// Load implements mapstore.Loader.
func (c *Client) Load(ctx context.Context, key []byte) ([]byte, bool, error) {
	out, err := c.call(ctx, "load", appendField(nil, key))
	if err != nil {
		return nil, false, err
	}
	if len(out) == 0 || out[0] > 1 {
		return nil, false, fmt.Errorf("%w: load answer", ErrProtocol)
	}
	if out[0] == 0 {
		return nil, false, nil
	}
	r := &reader{b: out[1:]}
	v := r.field()
	if err := r.done(); err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// LoadAll implements mapstore.AllLoader: fn receives the slices of keys and a value of its own.
func (c *Client) LoadAll(ctx context.Context, keys [][]byte, fn func(key, value []byte) error) error {
	out, err := c.call(ctx, "loadall", appendFields(keys))
	if err != nil {
		return err
	}
	r := &reader{b: out}
	for r.more() {
		i := r.uint()
		v := r.field()
		if r.err == nil && i >= uint64(len(keys)) {
			r.err = fmt.Errorf("%w: loadall key index %d of %d", ErrProtocol, i, len(keys))
		}
		if r.err != nil {
			return r.err
		}
		if err := fn(keys[i], v); err != nil {
			return err
		}
	}
	return r.err
}

// LoadAllKeys implements mapstore.KeyLoader. The server sends every key in one answer.
func (c *Client) LoadAllKeys(ctx context.Context, fn func(key []byte) error) error {
	out, err := c.call(ctx, "loadallkeys", nil)
	if err != nil {
		return err
	}
	r := &reader{b: out}
	for r.more() {
		k := r.field()
		if r.err != nil {
			return r.err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return r.err
}

func appendFields(fields [][]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = appendField(b, f)
	}
	return b
}
