package processor

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

//go:embed siglists.json
var defaultRules []byte

// Rules are the signature rules: which frames are skipped, which are kept as a prefix of the
// next one, when an out-of-memory crash is "small", and how long a signature may be.
type Rules struct {
	irrelevant    *regexp.Regexp
	prefix        *regexp.Regexp
	oomSmallBytes int64
	maxLength     int
}

type rulesFile struct {
	Irrelevant    []string `json:"irrelevant"`
	Prefix        []string `json:"prefix"`
	OOMSmallBytes int64    `json:"oom_small_bytes"`
	MaxLength     int      `json:"max_length"`
}

// DefaultRules returns the rules embedded in the package (siglists.json).
func DefaultRules() *Rules {
	r, err := ParseRules(defaultRules)
	if err != nil {
		panic("processor: embedded siglists.json: " + err.Error()) // a build defect, caught by the tests
	}
	return r
}

// ParseRules reads rules in the JSON form of siglists.json.
func ParseRules(data []byte) (*Rules, error) {
	var f rulesFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRules, err)
	}
	if f.MaxLength < 16 {
		return nil, fmt.Errorf("%w: max_length %d is below 16", ErrInvalidRules, f.MaxLength)
	}
	irr, err := anchored(f.Irrelevant)
	if err != nil {
		return nil, err
	}
	pre, err := anchored(f.Prefix)
	if err != nil {
		return nil, err
	}
	return &Rules{irrelevant: irr, prefix: pre, oomSmallBytes: f.OOMSmallBytes, maxLength: f.MaxLength}, nil
}

// anchored joins expressions into one that matches at the start of a frame; an empty list
// matches nothing.
func anchored(exprs []string) (*regexp.Regexp, error) {
	if len(exprs) == 0 {
		return regexp.MustCompile(`$.^`), nil
	}
	for _, e := range exprs {
		if _, err := regexp.Compile(e); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrInvalidRules, e, err)
		}
	}
	return regexp.Compile(`^(?:` + strings.Join(exprs, `|`) + `)`)
}

// Signatures of crashes without usable frames, in Socorro's words.
const (
	sigNoCrashingThread = "EMPTY: no crashing thread identified"
	sigNoFrames         = "EMPTY: no frame data available"
	sigJavaBadFormat    = "EMPTY: Java stack trace not in expected format"
)

// frameSignature is a frame as the signature sees it without symbols: module@0xoffset, or
// @0xaddress when no module holds the address.
func frameSignature(module string, offset, address uint64) string {
	if module == "" {
		return fmt.Sprintf("@%#x", address)
	}
	return fmt.Sprintf("%s@%#x", module, offset)
}

// Native builds the signature of a native crash from its normalised frames, crashing frame first:
// skip irrelevant frames, keep prefix frames and go on, stop at the first other frame. When no
// frame survives, the first frame stands in (with a note); with no frames at all, an EMPTY
// signature says why.
func (r *Rules) Native(frames []string, crashingThread bool) (string, []string) {
	var notes []string
	var kept []string
	for _, f := range frames {
		if r.irrelevant.MatchString(f) {
			continue
		}
		if strings.Contains(strings.ToLower(f), ".dll") {
			f, _, _ = strings.Cut(f, "@")
			if len(kept) > 0 && kept[len(kept)-1] == f {
				continue
			}
		}
		kept = append(kept, f)
		if !r.prefix.MatchString(f) {
			break
		}
	}
	sig := strings.Join(kept, " | ")
	if sig == "" {
		switch {
		case !crashingThread:
			notes = append(notes, "signature: no crashing thread identified")
			sig = sigNoCrashingThread
		case len(frames) == 0:
			notes = append(notes, "signature: no frames for the crashing thread")
			sig = sigNoFrames
		default:
			notes = append(notes, "signature: every frame of the crashing thread is irrelevant; using the first")
			sig = frames[0]
		}
	}
	return sig, notes
}

var (
	javaLineNumber = regexp.MustCompile(`\.java:\d+\)$`)
	javaHexAddress = regexp.MustCompile(`@[0-9a-f]{8}`)
)

// Java builds the signature of a Java crash from its JavaStackTrace annotation: the exception
// class, its description (addresses masked) and the first frame without its line number, as
// "java.lang.NullPointerException: message at org.Foo.bar(Foo.java)". A description that makes
// the signature too long is dropped.
func (r *Rules) Java(trace string) (string, []string) {
	var lines []string
	for l := range strings.Lines(trace) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return sigJavaBadFormat, []string{"signature: JavaStackTrace is empty"}
	}
	var notes []string
	class, desc, ok := strings.Cut(lines[0], ":")
	class = strings.TrimSpace(class)
	if ok {
		desc = strings.TrimSpace(javaHexAddress.ReplaceAllString(desc, "@<addr>"))
	} else {
		notes = append(notes, "signature: JavaStackTrace line 1 has no exception description")
	}
	method := ""
	if len(lines) > 1 {
		method = javaLineNumber.ReplaceAllString(lines[1], ".java)")
	} else {
		notes = append(notes, "signature: JavaStackTrace has no frame")
	}
	// Socorro separates a description that ends in a masked address from the frame with ": ",
	// any other with a space; signatures must match Socorro's to count the same crashes.
	sig := joinNonEmpty(": ", class, joinNonEmpty(" ", desc, method))
	if strings.HasSuffix(desc, "<addr>") {
		sig = joinNonEmpty(": ", class, desc, method)
	}
	if len(sig) > r.maxLength {
		sig = joinNonEmpty(": ", class, method)
		notes = append(notes, "signature: Java exception description dropped for length")
	}
	if sig == "" {
		return sigJavaBadFormat, append(notes, "signature: JavaStackTrace names no exception and no frame")
	}
	return sig, notes
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// decorate applies the rules that look at annotations rather than frames: an out-of-memory
// crash (OOMAllocationSize) is "OOM | small" or "OOM | large | <signature>"; then the signature
// is cut to the maximum length.
func (r *Rules) decorate(sig string, annotations map[string]string) (string, []string) {
	var notes []string
	if v, ok := annotations["OOMAllocationSize"]; ok {
		size, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("signature: OOMAllocationSize %q is not a number", v))
			sig = "OOM | unknown | " + sig
		case size <= r.oomSmallBytes:
			sig = "OOM | small"
		default:
			sig = "OOM | large | " + sig
		}
	}
	if len(sig) > r.maxLength {
		sig = truncate(sig, r.maxLength-3) + "..."
		notes = append(notes, fmt.Sprintf("signature: cut to %d characters", r.maxLength))
	}
	return sig, notes
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xc0 != 0x80 }
