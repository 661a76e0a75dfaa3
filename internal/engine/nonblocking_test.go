package engine

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
	"github.com/gridmap/gridmap/partition"
)

// Writes served inline are recycled once they answered (inlineWrites). If anything touched a
// write after that (a second backup callback, the retry path, a caller that gave up), another
// caller's write would get its answer or its mutation. Here 16 callers on every member write
// their own keys with operations whose answers depend on the request (conditional writes), two
// backups per partition, while every seventh backup call fails, sending writes down the retry
// path. Every answer must be the one its own operation calls for, and every value the last
// one written.
func TestRecycledWritesAnswerTheirOwnCallers(t *testing.T) {
	c := newCluster(t, 3, 2, nil)
	var calls atomic.Int64
	c.Net.SetDrop(func(from, to string, mt transport.MsgType) bool {
		return mt == msgBackup && calls.Add(1)%7 == 0
	})
	defer c.Net.SetDrop(nil)

	ctx := context.Background()
	const workers, rounds = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		m := mustMap[string, string](t, c.Svc(w%3), "recycled")
		wg.Go(func() {
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("worker %d: "+format, append([]any{w}, args...)...)
			}
			for i := range rounds {
				k := fmt.Sprintf("w%02d-k%03d", w, i)
				v1, v2 := k+"/one", k+"/two"
				if ok, err := m.PutIfAbsent(ctx, k, v1); err != nil || !ok {
					fail("first PutIfAbsent(%s) = %v, %v; want true", k, ok, err)
					return
				}
				if ok, err := m.PutIfAbsent(ctx, k, v2); err != nil || ok {
					fail("second PutIfAbsent(%s) = %v, %v; want false", k, ok, err)
					return
				}
				if ok, err := m.ReplaceIfSame(ctx, k, v2, "wrong"); err != nil || ok {
					fail("ReplaceIfSame(%s) with a stale value = %v, %v; want false", k, ok, err)
					return
				}
				if ok, err := m.ReplaceIfSame(ctx, k, v1, v2); err != nil || !ok {
					fail("ReplaceIfSame(%s) = %v, %v; want true", k, ok, err)
					return
				}
				if got, err := m.Get(ctx, k); err != nil || got != v2 {
					fail("Get(%s) = %q, %v; want %q", k, got, err, v2)
					return
				}
				if i%2 == 0 {
					if ok, err := m.Delete(ctx, k); err != nil || !ok {
						fail("Delete(%s) = %v, %v; want true", k, ok, err)
						return
					}
					if ok, err := m.Delete(ctx, k); err != nil || ok {
						fail("second Delete(%s) = %v, %v; want false", k, ok, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if calls.Load() < 7 {
		t.Fatalf("only %d backup calls: the retry path was not exercised", calls.Load())
	}
	// Every replica holds exactly what was acknowledged: what the owners applied is what their
	// backups applied.
	c.Net.SetDrop(nil)
	all := map[string]string{}
	for p := range c.Svc(0).PartitionCount() {
		maps.Copy(all, waitReplicasAgree(t, c, partition.ID(p), "recycled"))
	}
	want := map[string]string{}
	for w := range workers {
		for r := 1; r < rounds; r += 2 {
			k := fmt.Sprintf("w%02d-k%03d", w, r)
			want[k] = k + "/two"
		}
	}
	for k, v := range want {
		if all[k] != v {
			t.Errorf("replicas hold %q for %s, want %q", all[k], k, v)
		}
	}
	for k, v := range all {
		if _, ok := want[k]; !ok {
			t.Errorf("replicas hold deleted %s = %q", k, v)
		}
	}
}

// An owner serving a request on the reader gives its buffer back to the transport as soon as
// TryServe returns (the next request is read into it), unless the value is stored in that
// buffer (adoptMin bytes or more). Here each request's buffer is overwritten right after
// tryServeOp returns, as the transport does in test binaries; the answers, every replica and
// the write-behind store must still hold exactly what was written.
func TestServedRequestBuffersCanBeReused(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 3, 2, withStore("wb", st, mapstore.Config{WriteDelay: time.Millisecond}))
	waitTakenOver(t, c)
	ctx := context.Background()
	tab := c.Coord.Table
	inline, served := 0, 0
	serve := func(req opRequest) opResponse {
		t.Helper()
		p := partition.ID(req.Part)
		req.Epoch = tab.Epoch
		msg, err := encodeOpRequest(&req)
		if err != nil {
			t.Fatal(err)
		}
		msg.Header, msg.Body = slices.Clone(msg.Header), slices.Clone(msg.Body)
		answers := make(chan transport.Message, 1)
		s := c.Svcs[tab.Owner(p)]
		var out transport.Message
		if s.tryServeOp(ctx, msg, transport.ReplyFunc(func(m transport.Message, err error) {
			if err != nil {
				t.Error(err)
			}
			answers <- m
		})) {
			inline++
			if len(req.Value) < adoptMin {
				for _, b := range [][]byte{msg.Header, msg.Body} {
					for i := range b {
						b[i] = 0xEE
					}
				}
			}
			out = <-answers
		} else {
			// The first write to a partition takes it over on the ordinary path.
			if out, err = s.handleOp(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
		served++
		resp, err := decodeResponse(out)
		if err != nil || resp.Status != statusOK {
			t.Fatalf("%+v: %+v, %v", req, resp, err)
		}
		return resp
	}
	// Listeners on the owners get events whose keys and values are those of the mutations.
	recs := make([]*recorder[string, string], len(c.Active))
	for i := range recs {
		recs[i] = &recorder[string, string]{}
		if _, err := mustMap[string, string](t, c.Svc(i), "plain").AddLocalEntryListener(t.Context(), recs[i].on, ListenerOptions[string]{IncludeValues: true}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]byte{}
	for _, name := range []string{"plain", "wb"} {
		for i := range 40 {
			k := fmt.Sprintf("%s-%02d", name, i)
			key := []byte(k)
			p := partition.Of(key, c.Svc(0).PartitionCount())
			v1, v2 := []byte(k+"/one"), bytes.Repeat([]byte(k+"/two;"), 1+i*10) // up to ~4.5 KB: adopted or not
			serve(opRequest{Map: name, Kind: opPut, Part: int32(p), Key: key, Value: v1})
			if r := serve(opRequest{Map: name, Kind: opReplaceIfSame, Part: int32(p), Key: key, Expect: v1, Value: v2}); !r.Done {
				t.Fatalf("ReplaceIfSame(%s) not done", k)
			}
			if r := serve(opRequest{Map: name, Kind: opGet, Part: int32(p), Key: key}); string(r.Value) != string(v2) {
				t.Fatalf("Get(%s) = %q, want %q", k, r.Value, v2)
			}
			want[k] = v2
			if i%4 == 0 {
				if r := serve(opRequest{Map: name, Kind: opDelete, Part: int32(p), Key: key}); !r.Done {
					t.Fatalf("Delete(%s) not done", k)
				}
				delete(want, k)
			}
		}
	}
	if inline < served*3/4 {
		t.Fatalf("only %d of %d requests served inline", inline, served)
	}
	events := func() (all []EntryEvent[string, string]) {
		for _, r := range recs {
			evs, _ := r.Snapshot()
			all = append(all, evs...)
		}
		return all
	}
	const wantEvents = 40 + 40 + 10 // added, updated (ReplaceIfSame), removed
	enginetest.Eventually(t, 10*time.Second, "the listeners' events", func() bool { return len(events()) >= wantEvents })
	for _, e := range events() {
		i := -1
		if _, err := fmt.Sscanf(e.Key, "plain-%02d", &i); err != nil || i < 0 {
			t.Fatalf("event for key %q", e.Key)
		}
		one, two := e.Key+"/one", strings.Repeat(e.Key+"/two;", 1+i*10)
		ok := false
		switch e.Kind {
		case listener.Added:
			ok = e.NewValue == one
		case listener.Updated:
			ok = e.OldValue == one && e.NewValue == two
		case listener.Removed:
			ok = e.OldValue == two
		}
		if !ok {
			t.Fatalf("%v event for %s: old %.30q new %.30q", e.Kind, e.Key, e.OldValue, e.NewValue)
		}
	}
	if n := len(events()); n != wantEvents {
		t.Fatalf("%d events, want %d", n, wantEvents)
	}
	for _, name := range []string{"plain", "wb"} {
		got := map[string]string{}
		for p := range c.Svc(0).PartitionCount() {
			maps.Copy(got, waitReplicasAgree(t, c, partition.ID(p), name))
		}
		for k, v := range want {
			if strings.HasPrefix(k, name+"-") && got[k] != string(v) {
				t.Errorf("replicas hold %q for %s, want %q", got[k], k, v)
			}
		}
	}
	stored := map[string][]byte{}
	for k, v := range want {
		if strings.HasPrefix(k, "wb-") {
			stored[k] = v
		}
	}
	for i := 0; i < 40; i += 4 {
		stored[fmt.Sprintf("wb-%02d", i)] = nil // deleted
	}
	storeHas(t, st, stored)
}
