package collector

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
)

// DefaultMaxBytes is the largest submission the collector takes, measured after decompression:
// 25 MiB, as Mozilla's collector (a report is its annotations and all its dumps).
const DefaultMaxBytes = 25 << 20

const (
	// maxParts bounds the parts of one submission: real clients send a few dozen annotations
	// and a handful of dumps; a bound keeps a body of tiny parts from costing a part's
	// overhead a million times.
	maxParts = 4096
	// maxDumpName is the longest dump name kept (Antenna's limit).
	maxDumpName = 30
)

// reservedDumpNames are names the storage layout uses for other things.
var reservedDumpNames = []string{"dump_names", "processed_crash", "raw_crash"}

// Submission is a parsed crash submission.
type Submission struct {
	// Annotations are the crash annotations, name to value. Every value is text: a non-string
	// JSON value is kept as its JSON text (and a note says so).
	Annotations map[string]string
	// Dumps are the binary parts by sanitised name ("upload_file_minidump", ...).
	Dumps map[string][]byte
	// Payload says how the annotations came: "multipart" (one part each) or "json" (an
	// application/json part).
	Payload string
	// Compressed is true when the body was gzipped.
	Compressed bool
	// PayloadSize is the body's size as sent: its Content-Length, or the bytes read for a
	// chunked body.
	PayloadSize int64
	// Notes lists what the parser fixed or dropped, for the processed crash's notes.
	Notes []string
}

// Parse reads a crash submission: the request's headers, its Content-Length (-1 when unknown: a
// chunked body, as Crashpad's libcurl transport sends a gzipped report) and its body. A length of
// 0 is an empty body (NoContentLength). It reads at most maxBytes of body, compressed and after
// decompression, and returns ErrTooLarge beyond that, so a small gzip body cannot expand without
// bound. It returns a *MalformedError, naming the Reason, for a submission that breaks the
// protocol.
func Parse(h http.Header, contentLength int64, body io.Reader, maxBytes int64) (*Submission, error) {
	boundary, err := checkHeaders(h, contentLength)
	if err != nil {
		return nil, err
	}
	s := &Submission{
		Annotations: map[string]string{},
		Dumps:       map[string][]byte{},
		Payload:     "multipart",
		PayloadSize: contentLength,
		Compressed:  strings.EqualFold(strings.TrimSpace(h.Get("Content-Encoding")), "gzip"),
	}
	if contentLength > maxBytes && !s.Compressed {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, contentLength, maxBytes)
	}

	raw := &limitReader{r: body, n: maxBytes}
	var in io.Reader = raw
	var gz *errRecorder
	if s.Compressed {
		zr, err := gzip.NewReader(raw)
		if err != nil {
			if raw.exceeded {
				return nil, ErrTooLarge
			}
			return nil, malformed(BadGzip, err)
		}
		gz = &errRecorder{r: zr}
		in = gz
	}
	dec := &limitReader{r: in, n: maxBytes}
	fail := func(err error) error {
		switch {
		case raw.exceeded || dec.exceeded:
			return fmt.Errorf("%w: limit %d bytes", ErrTooLarge, maxBytes)
		case gz != nil && gz.err != nil:
			return malformed(BadGzip, gz.err)
		}
		return malformed(InvalidPayloadStructure, err)
	}

	// The multipart reader reports a body cut inside a part's header as a clean end: the
	// watcher tells whether the closing delimiter really came.
	closing := &closeWatcher{r: dec, delim: []byte("--" + boundary + "--")}
	if err := s.readParts(multipart.NewReader(closing, boundary)); err != nil {
		var m *MalformedError
		if errors.As(err, &m) {
			return nil, err
		}
		return nil, fail(err)
	}
	// Read what follows the closing boundary, so a gzip body's checksum is verified and a body
	// over the limit is refused even when the excess is after the last part.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return nil, fail(err)
	}
	if !closing.seen {
		return nil, malformed(InvalidPayloadStructure, errors.New("the body ends before the closing boundary"))
	}
	if contentLength < 0 {
		s.PayloadSize = maxBytes - raw.n // the chunked body's size as read
	}
	if len(s.Annotations) == 0 {
		return nil, malformed(NoAnnotations, nil)
	}
	return s, nil
}

// checkHeaders checks the content type and length, as Antenna does and in its order, and returns
// the multipart boundary.
func checkHeaders(h http.Header, contentLength int64) (string, error) {
	ct := strings.TrimSpace(h.Get("Content-Type"))
	if ct == "" {
		return "", malformed(NoContentType, nil)
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if mediaType != "multipart/form-data" && mediaType != "multipart/mixed" {
		return "", malformed(WrongContentType, err)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return "", malformed(NoBoundary, err)
	}
	if contentLength == 0 {
		return "", malformed(NoContentLength, nil)
	}
	return boundary, nil
}

func (s *Submission) readParts(mr *multipart.Reader) error {
	var hasJSON, hasFields bool
	for n := 0; ; n++ {
		// Raw parts: a dump must arrive byte for byte, whatever transfer encoding a part
		// header claims.
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n >= maxParts {
			return malformed(InvalidPayloadStructure, fmt.Errorf("more than %d parts", maxParts))
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return err
		}
		name := p.FormName()
		if name == "" {
			s.note("dropped a part without a name")
			continue
		}
		mediaType := partType(p.Header.Get("Content-Type"))
		switch {
		case mediaType == "application/json":
			hasJSON = true
			if err := s.addJSON(name, data); err != nil {
				return err
			}
		case (mediaType == "" || mediaType == "text/plain") && p.FileName() == "":
			hasFields = true
			s.setAnnotation(name, data)
		default:
			if mediaType != "application/octet-stream" {
				s.note(fmt.Sprintf("part %q has content type %q: kept as a dump", name, mediaType))
			}
			if err := s.addDump(name, data); err != nil {
				return err
			}
		}
	}
	if hasJSON {
		s.Payload = "json"
		if hasFields {
			s.note("annotations came both as a JSON part and as form fields")
		}
	}
	return nil
}

func partType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && mt == "" {
		mt, _, _ = strings.Cut(strings.ToLower(ct), ";")
		mt = strings.TrimSpace(mt)
	}
	return mt
}

func (s *Submission) setAnnotation(name string, value []byte) {
	v := string(bytes.ReplaceAll(value, []byte{0}, nil))
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
		s.note(fmt.Sprintf("annotation %q is not UTF-8: invalid bytes replaced", name))
	}
	if _, dup := s.Annotations[name]; dup {
		s.note(fmt.Sprintf("annotation %q sent twice: the last value kept", name))
	}
	s.Annotations[name] = v
}

// addJSON adds the annotations of a JSON part: one object whose values should be strings.
func (s *Submission) addJSON(name string, data []byte) error {
	if !utf8.Valid(data) {
		return malformed(InvalidJSON, fmt.Errorf("part %q is not UTF-8", name))
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return malformed(InvalidJSON, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return malformed(InvalidJSON, fmt.Errorf("data after the JSON value in part %q", name))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return malformed(InvalidJSONValue, fmt.Errorf("part %q holds a JSON %T, not an object", name, v))
	}
	var nonString []string
	for k, val := range obj {
		str, isString := val.(string)
		if !isString {
			b, err := json.Marshal(val)
			if err != nil {
				return malformed(InvalidJSON, err)
			}
			str = string(b)
			nonString = append(nonString, k)
		}
		s.setAnnotation(k, []byte(str))
	}
	if len(nonString) > 0 {
		slices.Sort(nonString)
		s.note(fmt.Sprintf("annotations %s are not JSON strings: kept as JSON text", strings.Join(nonString, ", ")))
	}
	return nil
}

func (s *Submission) addDump(name string, data []byte) error {
	clean := sanitizeDumpName(name)
	switch {
	case clean == "":
		return malformed(InvalidDumpName, fmt.Errorf("dump name %q has no letter, digit or underscore", name))
	case slices.Contains(reservedDumpNames, clean):
		return malformed(InvalidDumpName, fmt.Errorf("dump name %q is reserved", clean))
	}
	if _, dup := s.Dumps[clean]; dup {
		return malformed(InvalidDumpName, fmt.Errorf("two dumps named %q", clean))
	}
	if clean != name {
		s.note(fmt.Sprintf("dump name %q sanitised to %q", name, clean))
	}
	s.Dumps[clean] = data
	return nil
}

// sanitizeDumpName keeps ASCII letters, digits and underscores, at most maxDumpName of them: a dump
// name becomes a storage key.
func sanitizeDumpName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name) && b.Len() < maxDumpName; i++ {
		c := name[i]
		if c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (s *Submission) note(n string) { s.Notes = append(s.Notes, n) }

// limitReader passes at most n bytes and then fails with ErrTooLarge if the source has more,
// remembering that it did (a reader above it may replace the error with its own).
type limitReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.exceeded {
		return 0, ErrTooLarge
	}
	if l.n <= 0 {
		var probe [1]byte
		k, err := l.r.Read(probe[:])
		if k > 0 {
			l.exceeded = true
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

// errRecorder remembers the first error other than io.EOF its reader returned: the gzip
// decoder's, which the multipart reader above it would otherwise report as its own.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// closeWatcher watches a multipart body for its closing delimiter ("--boundary--" at the start of
// the body or of a line).
type closeWatcher struct {
	r     io.Reader
	delim []byte
	tail  []byte // the last len(delim) bytes seen, so a delimiter split across reads is found
	seen  bool
	n     int64
}

func (c *closeWatcher) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && !c.seen {
		buf := append(c.tail, p[:n]...)
		start := c.n - int64(len(c.tail)) // offset in the body of buf[0]
		for i := 0; ; {
			j := bytes.Index(buf[i:], c.delim)
			if j < 0 {
				break
			}
			at := i + j
			if (start+int64(at) == 0) || (at > 0 && buf[at-1] == '\n') {
				c.seen = true
				break
			}
			i = at + 1
		}
		keep := len(c.delim)
		if len(buf) < keep {
			keep = len(buf)
		}
		c.tail = append(c.tail[:0], buf[len(buf)-keep:]...)
		c.n += int64(n)
	}
	return n, err
}
