package elasticsearch_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/elasticsearch"
)

// Processed crashes written behind into one index a week, their date taken from the crash ID,
// only the searched fields indexed; then the top signatures of a product. (Not run: it needs a
// server at 127.0.0.1:9200.)
func Example() {
	ctx := context.Background()
	store, err := elasticsearch.New(elasticsearch.Config{
		Addresses: []string{"http://127.0.0.1:9200"},
		Index:     "socorro%Y%W",
		KeyTime: func(crashID []byte) (time.Time, error) { // a crash ID ends with its date, yymmdd
			if len(crashID) < 6 {
				return time.Time{}, fmt.Errorf("crash ID %q too short", crashID)
			}
			return time.Parse("060102", string(crashID[len(crashID)-6:]))
		},
		Mappings: []byte(`{"dynamic":false,"properties":{"signature":{"type":"keyword"},"product":{"type":"keyword"}}}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	member, err := gridmap.Start(ctx, gridmap.Config{Maps: map[string]dmap.MapConfig{
		"processed": {Store: store, Persistence: mapstore.Config{WriteDelay: time.Second}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer member.Close(ctx)
	processed, _ := gridmap.GetMap[string, []byte](member, "processed")
	_ = processed.Put(ctx, "de1bb258-cbbf-4589-a673-34f802261204", []byte(`{"signature":"OOM | small","product":"Firefox"}`))
	_ = processed.Flush(ctx)
	_ = store.Refresh(ctx)

	top, total, err := store.Count(ctx, elasticsearch.Query{Match: map[string]any{"product": "Firefox"}, Size: 20}, "signature")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(total, "crashes")
	for _, b := range top {
		fmt.Println(b.Count, b.Value)
	}
}
