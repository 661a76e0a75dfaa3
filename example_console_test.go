package gridmap_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridmap/gridmap"
)

// A member with its management console and its metrics on the application's registry: the
// console (the page at /, the JSON API, /metrics) on an HTTP address, publishing allowed with
// the bearer token, and gridmap's collector on reg, which the application may also serve on
// its own mux with promhttp.HandlerFor(reg, ...).
func ExampleConsoleConfig() {
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := gridmap.Start(ctx, gridmap.Config{
		Name:    "console-example",
		Timings: gridmap.LocalTimings(),
		Console: gridmap.ConsoleConfig{Addr: "127.0.0.1:0", Token: "a long random token"},
		Metrics: reg,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close(context.Background())

	mp, err := gridmap.GetMap[string, int](m, "counts")
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := range 3 {
		if err := mp.Put(ctx, fmt.Sprint("k", i), i); err != nil {
			fmt.Println(err)
			return
		}
	}
	resp, err := http.Get("http://" + m.ConsoleAddr() + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, `gridmap_map_operations_total{map="counts",member="console-example",op="put"}`) {
			fmt.Println(line)
		}
	}
	// Output:
	// gridmap_map_operations_total{map="counts",member="console-example",op="put"} 3
}
