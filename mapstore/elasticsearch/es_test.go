package elasticsearch

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/storetest"
	"github.com/gridmap/gridmap/mapstore"
)

// The tests in this package that need a server read its address from GRIDMAP_ES_URL (set by
// .ci/run after .ci/elasticsearch.sh start). Without it, or when it does not answer, they skip
// with a message, except under CI=true, where a missing server fails them.

// serverURL returns the test server's address, or skips (fails in CI) the test.
func serverURL(t testing.TB) string {
	t.Helper()
	url := strings.TrimSuffix(os.Getenv("GRIDMAP_ES_URL"), "/")
	ci := os.Getenv("CI") == "true"
	miss := func(why string) {
		msg := why + ": start one with .ci/elasticsearch.sh start and set GRIDMAP_ES_URL=http://127.0.0.1:9200"
		if ci {
			t.Fatal(msg + " (CI=true: a missing server is a failure)")
		}
		t.Skip(msg)
	}
	if url == "" {
		miss("GRIDMAP_ES_URL is not set")
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	res, err := hc.Get(url + "/_cluster/health")
	if err != nil {
		miss(fmt.Sprintf("no Elasticsearch at %s (%v)", url, err))
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		miss(fmt.Sprintf("Elasticsearch at %s answers HTTP %d", url, res.StatusCode))
	}
	return url
}

var indexSeq atomic.Uint64

// testIndex returns an index name of the test's own, deleted (with its template) when the test
// ends.
func testIndex(t testing.TB, url string) string {
	t.Helper()
	name := fmt.Sprintf("gm-test-%d-%d", time.Now().UnixNano(), indexSeq.Add(1))
	t.Cleanup(func() {
		hc := &http.Client{Timeout: 30 * time.Second}
		for _, p := range []string{"/" + name + "*", "/_index_template/gridmap-" + name} {
			req, _ := http.NewRequest(http.MethodDelete, url+p, nil)
			if res, err := hc.Do(req); err == nil {
				res.Body.Close()
			}
		}
	})
	return name
}

// newStore returns a Store on the test server with a fresh index; mod adjusts the config.
func newStore(t testing.TB, mod func(*Config)) (*Store, string) {
	t.Helper()
	url := serverURL(t)
	cfg := Config{Addresses: []string{url}, Index: testIndex(t, url),
		Settings: []byte(`{"number_of_shards":1,"number_of_replicas":0}`)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, url
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestContract runs the mapstore contract suite on the real server: JSON documents under their
// keys, and any bytes under any key (IDBase64 with WrapBinary).
func TestContract(t *testing.T) {
	serverURL(t)
	t.Run("JSON", func(t *testing.T) {
		storetest.RunContract(t, storetest.Contract{
			Value: func(i, r int) []byte {
				return fmt.Appendf(nil, `{"n":%d,"round":%d,"text":"caf\u00e9 \"q\"","nested":{"a":[1,2,null]}}`, i, r)
			},
			New: func(t *testing.T) mapstore.Store { s, _ := newStore(t, nil); return s },
		})
	})
	t.Run("Binary", func(t *testing.T) {
		storetest.RunContract(t, storetest.Contract{AnyKey: true, New: func(t *testing.T) mapstore.Store {
			s, _ := newStore(t, func(c *Config) {
				c.IDs, c.Document, c.Value, c.Mappings = IDBase64, WrapBinary, UnwrapBinary, []byte(BinaryMappings)
			})
			return s
		}})
	})
}
