// Package storetest serves a memstore.Store over HTTP so that member processes of a
// multi-process test share one store that the test controls: the test holds the
// memstore.Store (Down, Up, FailNext, Get, Calls) and starts the server; each member process
// configures a Client with the server's URL as its map's store.
//
//	st := memstore.New()
//	srv := httptest.NewServer(storetest.NewServer(st))
//	defer srv.Close()
//	// in the member process:
//	cfg.Maps = map[string]dmap.MapConfig{"wb": {Store: storetest.NewClient(url), ...}}
//
// Every request is a POST to /<operation> (store, delete, storeall, deleteall, load, loadall,
// loadallkeys) whose body is a sequence of length-prefixed fields, so keys and values are
// binary-safe. A store that is down answers 503, any other store error 500, both with the
// error's message as the body.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gridmap/gridmap/mapstore/memstore"
)

// Server is an http.Handler that applies requests to a memstore.Store. It is safe for
// concurrent use; the store's fault injection applies to every request.
type Server struct {
	st *memstore.Store
}

// NewServer returns a handler serving st.
func NewServer(st *memstore.Store) *Server { return &Server{st: st} }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "storetest: POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "storetest: read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	out, err := s.serve(r.Context(), r.URL.Path, body)
	switch {
	case errors.Is(err, ErrProtocol):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, memstore.ErrDown):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(out)
	}
}

// serve runs one operation on the store and returns the answer's body.
func (s *Server) serve(ctx context.Context, path string, body []byte) ([]byte, error) {
	r := &reader{b: body}
	switch path {
	case "/store":
		k, v := r.field(), r.field()
		if err := r.done(); err != nil {
			return nil, err
		}
		return nil, s.st.Store(ctx, k, v)
	case "/delete":
		k := r.field()
		if err := r.done(); err != nil {
			return nil, err
		}
		return nil, s.st.Delete(ctx, k)
	case "/storeall":
		f := r.fields()
		if r.err == nil && len(f)%2 != 0 {
			r.err = fmt.Errorf("%w: odd number of fields in storeall", ErrProtocol)
		}
		if r.err != nil {
			return nil, r.err
		}
		keys, values := make([][]byte, len(f)/2), make([][]byte, len(f)/2)
		for i := range keys {
			keys[i], values[i] = f[2*i], f[2*i+1]
		}
		return nil, s.st.StoreAll(ctx, keys, values)
	case "/deleteall":
		keys := r.fields()
		if r.err != nil {
			return nil, r.err
		}
		return nil, s.st.DeleteAll(ctx, keys)
	case "/load":
		k := r.field()
		if err := r.done(); err != nil {
			return nil, err
		}
		v, found, err := s.st.Load(ctx, k)
		if err != nil || !found {
			return []byte{0}, err
		}
		return appendField([]byte{1}, v), nil
	case "/loadall":
		keys := r.fields()
		if r.err != nil {
			return nil, r.err
		}
		index := make(map[string]uint64, len(keys))
		for i, k := range keys {
			index[string(k)] = uint64(i)
		}
		var out []byte
		err := s.st.LoadAll(ctx, keys, func(key, value []byte) error {
			out = appendUint(out, index[string(key)])
			out = appendField(out, value)
			return nil
		})
		return out, err
	case "/loadallkeys":
		var out []byte
		err := s.st.LoadAllKeys(ctx, func(key []byte) error {
			out = appendField(out, key)
			return nil
		})
		return out, err
	}
	return nil, fmt.Errorf("%w: unknown operation %q", ErrProtocol, path)
}
