package collector

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func headers(contentType, encoding string) http.Header {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if encoding != "" {
		h.Set("Content-Encoding", encoding)
	}
	return h
}

const formType = "multipart/form-data; boundary=" + boundary

func TestParseMalformed(t *testing.T) {
	valid := body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", []byte("MDMP...")))
	for _, tc := range []struct {
		name        string
		contentType string
		encoding    string
		length      int64 // -1: len(body)
		body        []byte
		want        Reason
	}{
		{"no content type", "", "", -1, valid, NoContentType},
		{"wrong content type", "application/x-www-form-urlencoded", "", -1, valid, WrongContentType},
		{"wrong content type garbage", "multipart", "", -1, valid, WrongContentType},
		{"no boundary", "multipart/form-data", "", -1, valid, NoBoundary},
		{"empty boundary", "multipart/form-data; boundary=", "", -1, valid, NoBoundary},
		{"no content length", formType, "", 0, valid, NoContentLength},
		{"bad gzip header", formType, "gzip", -1, valid, BadGzip},
		{"bad gzip checksum", formType, "gzip", -1, corruptTrailer(gzipped(t, valid)), BadGzip},
		{"truncated gzip", formType, "gzip", -1, gzipped(t, valid)[:40], BadGzip},
		{"invalid json", formType, "", -1, body(t, extra(`{"ProductName": "Firefox"`)), InvalidJSON},
		{"json trailing data", formType, "", -1, body(t, extra(`{"ProductName": "Firefox"} {}`)), InvalidJSON},
		{"json not utf-8", formType, "", -1, body(t, extra("{\"ProductName\": \"\xff\"}")), InvalidJSON},
		{"json array", formType, "", -1, body(t, extra(`["ProductName", "Firefox"]`)), InvalidJSONValue},
		{"json string", formType, "", -1, body(t, extra(`"Firefox"`)), InvalidJSONValue},
		{"reserved dump name", formType, "", -1, body(t, field("ProductName", "Firefox"), dump("raw_crash", []byte("x"))), InvalidDumpName},
		{"empty dump name", formType, "", -1, body(t, field("ProductName", "Firefox"), dump("../..", []byte("x"))), InvalidDumpName},
		{"two dumps one name", formType, "", -1, body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", []byte("x")), dump("upload_file_minidump", []byte("y"))), InvalidDumpName},
		{"not multipart", formType, "", -1, []byte("ProductName=Firefox&Version=1.0"), InvalidPayloadStructure},
		{"no closing boundary", formType, "", -1, valid[:len(valid)-len(boundary)-8], InvalidPayloadStructure},
		{"other boundary", "multipart/form-data; boundary=xyz", "", -1, valid, InvalidPayloadStructure},
		{"part header without end", formType, "", -1, []byte("--" + boundary + "\r\nContent-Disposition: form-data; name=\"a\"\r\n"), InvalidPayloadStructure},
		{"only dumps", formType, "", -1, body(t, dump("upload_file_minidump", []byte("MDMP"))), NoAnnotations},
		{"no parts", formType, "", -1, []byte("--" + boundary + "--\r\n"), NoAnnotations},
		{"unnamed parts only", formType, "", -1, body(t, part{name: "", data: []byte("x")}), NoAnnotations},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.length
			if n == -1 {
				n = int64(len(tc.body))
			}
			_, err := Parse(headers(tc.contentType, tc.encoding), n, bytes.NewReader(tc.body), DefaultMaxBytes)
			var m *MalformedError
			if !errors.As(err, &m) {
				t.Fatalf("err %v, want malformed %s", err, tc.want)
			}
			if m.Reason != tc.want {
				t.Errorf("reason %s (%v), want %s", m.Reason, err, tc.want)
			}
		})
	}
}

// corruptTrailer flips a bit of the gzip CRC-32 trailer: the data decompresses, the check fails.
func corruptTrailer(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)-8] ^= 1
	return b
}

func TestParseFieldsAndJSON(t *testing.T) {
	mini := []byte("MDMP\x93\xa7 not really a dump")
	content := []byte("MDMP content process")
	for _, tc := range []struct {
		name    string
		parts   []part
		payload string
		notes   int
		want    map[string]string
	}{
		{
			name:    "fields",
			parts:   []part{field("ProductName", "Firefox"), field("Version", "128.0"), field("BuildID", "20240701"), dump("upload_file_minidump", mini), dump("upload_file_minidump_content", content)},
			payload: "multipart",
			want:    map[string]string{"ProductName": "Firefox", "Version": "128.0", "BuildID": "20240701"},
		},
		{
			name:    "extra",
			parts:   []part{extra(`{"ProductName":"Firefox","Version":"128.0","TelemetryEnvironment":"{\"build\":{\"vendor\":\"Mozilla\"}}"}`), dump("upload_file_minidump", mini), dump("upload_file_minidump_content", content)},
			payload: "json",
			want:    map[string]string{"ProductName": "Firefox", "Version": "128.0", "TelemetryEnvironment": `{"build":{"vendor":"Mozilla"}}`},
		},
		{
			name:    "extra with non-string values",
			parts:   []part{extra(`{"ProductName":"Firefox","Uptime":12.50,"Flags":{"a":true}}`), dump("upload_file_minidump", mini), dump("upload_file_minidump_content", content)},
			payload: "json",
			notes:   1,
			want:    map[string]string{"ProductName": "Firefox", "Uptime": "12.50", "Flags": `{"a":true}`},
		},
		{
			name:    "both, with a NUL and bad UTF-8 in fields",
			parts:   []part{field("Comments", "a\x00b\xffc"), extra(`{"ProductName":"Firefox"}`), dump("upload_file_minidump", mini), dump("upload_file_minidump_content", content)},
			payload: "json",
			notes:   2,
			want:    map[string]string{"ProductName": "Firefox", "Comments": "ab\uFFFDc"},
		},
	} {
		for _, gz := range []bool{false, true} {
			b := body(t, tc.parts...)
			enc := ""
			if gz {
				b, enc = gzipped(t, b), "gzip"
			}
			s, err := Parse(headers(formType, enc), int64(len(b)), bytes.NewReader(b), DefaultMaxBytes)
			if err != nil {
				t.Fatalf("%s gzip=%v: %v", tc.name, gz, err)
			}
			if s.Payload != tc.payload || s.Compressed != gz || s.PayloadSize != int64(len(b)) {
				t.Errorf("%s gzip=%v: payload %q compressed %v size %d", tc.name, gz, s.Payload, s.Compressed, s.PayloadSize)
			}
			if len(s.Notes) != tc.notes {
				t.Errorf("%s gzip=%v: notes %q, want %d", tc.name, gz, s.Notes, tc.notes)
			}
			if len(s.Annotations) != len(tc.want) {
				t.Errorf("%s gzip=%v: annotations %v, want %v", tc.name, gz, s.Annotations, tc.want)
			}
			for k, v := range tc.want {
				if s.Annotations[k] != v {
					t.Errorf("%s gzip=%v: %s = %q, want %q", tc.name, gz, k, s.Annotations[k], v)
				}
			}
			if len(s.Dumps) != 2 || !bytes.Equal(s.Dumps["upload_file_minidump"], mini) || !bytes.Equal(s.Dumps["upload_file_minidump_content"], content) {
				t.Errorf("%s gzip=%v: dumps %v", tc.name, gz, sortedKeys(s.Dumps))
			}
		}
	}
}

// A part sent with a Content-Transfer-Encoding header is kept byte for byte: a dump must reach
// the processor exactly as the client wrote it.
// A chunked body (length unknown) is read to its end, within the limit.
func TestParseChunked(t *testing.T) {
	b := gzipped(t, body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", []byte("MDMP"))))
	s, err := Parse(headers(formType, "gzip"), -1, bytes.NewReader(b), DefaultMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if s.PayloadSize != int64(len(b)) || string(s.Dumps["upload_file_minidump"]) != "MDMP" {
		t.Errorf("payload size %d (want %d), dumps %v", s.PayloadSize, len(b), s.Dumps)
	}
	big := body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", make([]byte, 64<<10)))
	if _, err := Parse(headers(formType, ""), -1, bytes.NewReader(big), 32<<10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("chunked body past the limit: %v", err)
	}
}

func TestParseKeepsRawBytes(t *testing.T) {
	raw := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"ProductName\"\r\n\r\nFirefox\r\n" +
		"--" + boundary + "\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"x.dmp\"\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nMDMP=3D=\r\n" +
		"--" + boundary + "--\r\n"
	s, err := Parse(headers(formType, ""), int64(len(raw)), strings.NewReader(raw), DefaultMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s.Dumps["upload_file_minidump"]); got != "MDMP=3D=" {
		t.Errorf("dump %q, want the bytes as sent", got)
	}
}

func TestParseSizeLimit(t *testing.T) {
	const limit = 64 << 10
	fields := body(t, field("ProductName", "Firefox"))
	overhead := len(body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", nil)))
	fits := body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", make([]byte, limit-overhead)))
	over := body(t, field("ProductName", "Firefox"), dump("upload_file_minidump", make([]byte, limit-overhead+1)))
	if len(fits) != limit || len(over) != limit+1 {
		t.Fatalf("test bodies of %d and %d bytes, want %d and %d", len(fits), len(over), limit, limit+1)
	}
	_ = fields
	for _, tc := range []struct {
		name    string
		body    []byte
		gzip    bool
		length  int64
		tooBig  bool
		message string
	}{
		{name: "exactly the limit", body: fits},
		{name: "exactly the limit, gzipped", body: fits, gzip: true},
		{name: "one byte over", body: over, tooBig: true},
		{name: "one byte over, gzipped", body: over, gzip: true, tooBig: true},
		// The length header lies: the body is read to the limit and no further.
		{name: "one byte over, short length header", body: over, length: 100, tooBig: true},
		// A body over the limit after its final boundary is still over the limit.
		{name: "epilogue over the limit", body: append(bytes.Clone(fits), 'x'), tooBig: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, enc := tc.body, ""
			if tc.gzip {
				b, enc = gzipped(t, b), "gzip"
			}
			n := tc.length
			if n == 0 {
				n = int64(len(b))
			}
			r := &countingReader{r: bytes.NewReader(b)}
			_, err := Parse(headers(formType, enc), n, r, limit)
			if tc.tooBig != errors.Is(err, ErrTooLarge) {
				t.Fatalf("err %v, too large %v", err, tc.tooBig)
			}
			if !tc.tooBig && err != nil {
				t.Fatal(err)
			}
			if r.n > limit+1 {
				t.Errorf("read %d bytes of the body, limit %d", r.n, limit)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// A gzip body that expands without end (a stream of zeros, compressed as it is read) is refused
// at the limit: the parser reads through a limit and never expands more than it allows.
func TestParseGzipBomb(t *testing.T) {
	const limit = 1 << 20
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		zw := gzip.NewWriter(pw)
		head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"ProductName\"\r\n\r\nFirefox\r\n" +
			"--" + boundary + "\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"x.dmp\"\r\n" +
			"Content-Type: application/octet-stream\r\n\r\n"
		if _, err := zw.Write([]byte(head)); err != nil {
			return
		}
		zeros := make([]byte, 64<<10)
		for {
			if _, err := zw.Write(zeros); err != nil {
				return // the reader closed the pipe
			}
		}
	}()
	result := make(chan error, 1)
	go func() {
		_, err := Parse(headers(formType, "gzip"), 1<<20, pr, limit)
		result <- err
	}()
	var err error
	select {
	case err = <-result:
	case <-time.After(time.Minute):
		t.Fatal("Parse still reading an endless body after a minute")
	}
	pr.CloseWithError(errors.New("test done"))
	<-done
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

func FuzzParse(f *testing.F) {
	dumps := realDumps(f)
	f.Add(body(f, field("ProductName", "Firefox"), dump("upload_file_minidump", dumps["test.dmp"])), false, false)
	f.Add(gzipped(f, body(f, extra(`{"ProductName":"Firefox","Version":"1"}`), dump("upload_file_minidump", dumps["linux-mini.dmp"]))), true, true)
	f.Add(body(f, extra(`{"a":[1,{"b":null}]}`), field("x", "y"), dump("upload_file_minidump_content", []byte("z"))), false, true)
	f.Add([]byte("--"+boundary+"\r\n\r\n--"+boundary+"--"), false, false)
	f.Fuzz(func(t *testing.T, b []byte, gz, chunked bool) {
		enc := ""
		if gz {
			enc = "gzip"
		}
		length := int64(len(b)) + 1 // any known length; net/http holds the body to it
		if chunked {
			length = -1
		}
		const limit = 1 << 20
		s, err := Parse(headers(formType, enc), length, bytes.NewReader(b), limit)
		if err != nil {
			var m *MalformedError
			if !errors.As(err, &m) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither malformed nor too large", err)
			}
			return
		}
		if len(s.Annotations) == 0 {
			t.Fatal("accepted a submission without annotations")
		}
		total := 0
		for name, d := range s.Dumps {
			if name == "" || len(name) > maxDumpName || sanitizeDumpName(name) != name {
				t.Fatalf("dump name %q", name)
			}
			total += len(d)
		}
		if total > limit {
			t.Fatalf("dumps of %d bytes past a limit of %d", total, limit)
		}
	})
}
