package elasticsearch

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Processed-crash-like values for the tests and the benchmark. A map value is an envelope: the
// processed crash (a JSON object) and the raw minidump (binary). The Document hook indexes the
// processed crash and leaves the dump out, as Socorro keeps dumps elsewhere.

// crashMappings indexes the fields the pages search and keeps the rest (the large json_dump) in
// _source only.
const crashMappings = `{"dynamic":false,"properties":{
	"uuid":{"type":"keyword"},"signature":{"type":"keyword"},"product":{"type":"keyword"},
	"version":{"type":"keyword"},"os_name":{"type":"keyword"},"date_processed":{"type":"date"},
	"uptime":{"type":"long"}}}`

var (
	signatures = []string{"OOM | small", "js::gc::GCRuntime::collect", "mozilla::ipc::FatalError",
		"nsThread::ProcessNextEvent", "shutdownhang | ntdll.dll", "IPCError-browser | ShutDownKill", "EMPTY: no crashing thread identified"}
	products = []string{"Firefox", "Fenix", "Thunderbird"}
	oses     = []string{"Windows NT", "Linux", "Mac OS X", "Android"}
)

// crashID returns a Socorro-style crash ID for day: a UUID whose last 6 digits are the date
// (yymmdd), after the throttle digit 2.
func crashID(r *rand.Rand, day time.Time) string {
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%06x2%s", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff,
		r.Uint32()&0xffffff, day.UTC().Format("060102"))
}

// crashTime is the KeyTime of crash IDs: the date of their last 6 digits.
func crashTime(key []byte) (time.Time, error) {
	if len(key) < 6 {
		return time.Time{}, fmt.Errorf("crash ID %q too short", key)
	}
	return time.Parse("060102", string(key[len(key)-6:]))
}

// processedCrash returns a processed crash of about size bytes (its json_dump pads it).
func processedCrash(r *rand.Rand, id string, day time.Time, size int) []byte {
	var frames strings.Builder
	for n := 0; frames.Len() < size-600; n++ {
		fmt.Fprintf(&frames, `{"frame":%d,"module":"xul.dll","function":"mozilla::dom::Fn%d","offset":"0x%x","trust":"cfi"},`, n, r.IntN(1000), r.Uint32())
	}
	doc := map[string]any{
		"uuid": id, "signature": signatures[r.IntN(len(signatures))], "product": products[r.IntN(len(products))],
		"version": fmt.Sprintf("%d.0", 120+r.IntN(10)), "os_name": oses[r.IntN(len(oses))],
		"date_processed": day.UTC().Add(time.Duration(r.IntN(86400)) * time.Second).Format(time.RFC3339),
		"uptime":         r.IntN(100000),
		"json_dump":      json.RawMessage(`{"crashing_thread":0,"threads":[{"frames":[` + strings.TrimSuffix(frames.String(), ",") + `]}]}`),
	}
	b, _ := json.Marshal(doc)
	return b
}

// envelope packs a processed crash and its dump into one map value.
func envelope(crash, dump []byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(crash)))
	b = append(b, crash...)
	return append(b, dump...)
}

// openEnvelope splits a map value.
func openEnvelope(v []byte) (crash, dump []byte, err error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return nil, nil, errors.New("not an envelope")
	}
	return v[k : k+int(n)], v[k+int(n):], nil
}

// crashDocument is the Document hook: the processed crash, without the dump.
func crashDocument(_, value []byte) ([]byte, error) {
	crash, _, err := openEnvelope(value)
	return crash, err
}

// crashValue is the Value hook: an envelope with the stored crash and no dump.
func crashValue(_, source []byte) ([]byte, error) { return envelope(bytes.Clone(source), nil), nil }

// crashConfig configures a Store for crashes in index (a name or a pattern).
func crashConfig(c *Config) {
	c.Mappings = []byte(crashMappings)
	c.Document, c.Value = crashDocument, crashValue
}
