package collector_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/collector"
)

// A crash client posts annotations and a dump; the handler answers with the crash ID once the
// store has the report.
func ExampleHandler() {
	h, err := collector.NewHandler(collector.Config{
		Store: collector.StoreFunc(func(ctx context.Context, c *collector.Crash) error {
			fmt.Println("stored", c.Annotations["ProductName"], len(c.Dumps["upload_file_minidump"]), "bytes")
			return nil
		}),
		// Fixed clock and randomness so the example's crash ID is always the same.
		Now:    func() time.Time { return time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC) },
		Random: bytes.NewReader(bytes.Repeat([]byte{0xab}, 16)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("ProductName", "Firefox")
	w.WriteField("Version", "128.0")
	dump, _ := w.CreateFormFile("upload_file_minidump", "crash.dmp")
	dump.Write([]byte("MDMP...a minidump..."))
	w.Close()

	resp, err := http.Post(srv.URL+"/submit", w.FormDataContentType(), &body)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.StatusCode, " ", string(answer))
	// Output:
	// stored Firefox 20 bytes
	// 200 CrashID=bp-abababab-abab-4bab-abab-ababa0261204
}
