package generator

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"mime/multipart"
	"net/textproto"
	"sort"
	"strconv"
)

// product is one product a simulated client reports for.
type product struct {
	name, version, channel string
	weight                 int
}

// products are the products simulated clients report for, with their share of the reports.
var products = []product{
	{"Firefox", "128.0.3", "release", 60},
	{"Firefox", "129.0b4", "beta", 15},
	{"Firefox", "130.0a1", "nightly", 10},
	{"Thunderbird", "128.1.0esr", "esr", 10},
	{"Focus", "128.0", "release", 5},
}

// fillerKey is the annotation that brings a report's annotations to their drawn size, as a real
// client's large annotations (telemetry environment, module lists) do.
const fillerKey = "TelemetryEnvironment"

// Report is one simulated crash report.
type Report struct {
	Annotations map[string]string
	// Dump is a real minidump followed by random padding up to the drawn size. Readers find
	// every stream by offset, so the padding changes the size, not what the dump says.
	Dump []byte
}

// NewReport makes a report whose annotations, encoded as JSON, take annotationSize bytes (or as
// few as the fixed annotations need, if more) and whose dump is base padded to dumpSize bytes
// (or base, if longer). r chooses the product and the padding.
func NewReport(r *rand.Rand, base []byte, annotationSize, dumpSize int64) (Report, error) {
	p := pickProduct(r)
	a := map[string]string{
		"ProductName":    p.name,
		"Version":        p.version,
		"ReleaseChannel": p.channel,
		"BuildID":        "2024" + fmt.Sprintf("%010d", r.Int64N(1e10)),
		"CrashTime":      strconv.FormatInt(1_700_000_000+r.Int64N(100_000_000), 10),
		fillerKey:        "",
	}
	b, err := json.Marshal(a)
	if err != nil {
		return Report{}, err
	}
	if pad := annotationSize - int64(len(b)); pad > 0 {
		a[fillerKey] = randomText(r, pad)
	}
	dump := make([]byte, max(int64(len(base)), dumpSize))
	copy(dump, base)
	fill(r, dump[len(base):])
	return Report{Annotations: a, Dump: dump}, nil
}

func pickProduct(r *rand.Rand) product {
	total := 0
	for _, p := range products {
		total += p.weight
	}
	n := r.IntN(total)
	for _, p := range products {
		if n < p.weight {
			return p
		}
		n -= p.weight
	}
	return products[0]
}

// randomText is n bytes of letters and digits: JSON encodes them one byte each.
func randomText(r *rand.Rand, n int64) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func fill(r *rand.Rand, b []byte) {
	for len(b) >= 8 {
		v := r.Uint64()
		for i := range 8 {
			b[i] = byte(v >> (8 * i))
		}
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// Encode returns the body and Content-Type of a submission of rep as a crash client posts it: the
// annotations as one JSON part named "extra" (asJSON) or one form field each, the dump as
// "upload_file_minidump", and the whole body gzipped if compress is set (then the request also
// needs Content-Encoding: gzip).
func Encode(rep Report, asJSON, compress bool) (contentType string, body []byte, err error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if asJSON {
		j, err := json.Marshal(rep.Annotations)
		if err != nil {
			return "", nil, err
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="extra"`)
		h.Set("Content-Type", "application/json")
		pw, err := w.CreatePart(h)
		if err != nil {
			return "", nil, err
		}
		if _, err := pw.Write(j); err != nil {
			return "", nil, err
		}
	} else {
		keys := make([]string, 0, len(rep.Annotations))
		for k := range rep.Annotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := w.WriteField(k, rep.Annotations[k]); err != nil {
				return "", nil, err
			}
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="upload_file_minidump"; filename="upload_file_minidump.dmp"`)
	h.Set("Content-Type", "application/octet-stream")
	pw, err := w.CreatePart(h)
	if err != nil {
		return "", nil, err
	}
	if _, err := pw.Write(rep.Dump); err != nil {
		return "", nil, err
	}
	if err := w.Close(); err != nil {
		return "", nil, err
	}
	body = buf.Bytes()
	if compress {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		if _, err := zw.Write(body); err != nil {
			return "", nil, err
		}
		if err := zw.Close(); err != nil {
			return "", nil, err
		}
		body = z.Bytes()
	}
	return w.FormDataContentType(), body, nil
}
