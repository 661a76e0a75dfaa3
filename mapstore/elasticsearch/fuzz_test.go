package elasticsearch

import (
	"testing"
)

// FuzzParseBulk feeds arbitrary answers to the bulk answer parser, which reads what the server
// (or whatever answers in its place) sends: it must never panic, and an answer it accepts has one
// classified result per operation.
func FuzzParseBulk(f *testing.F) {
	for _, seed := range []string{
		`{"took":3,"errors":false,"items":[{"index":{"_index":"x","_id":"a","status":201}},{"delete":{"_index":"x","_id":"b","status":404,"result":"not_found"}}]}`,
		`{"errors":true,"items":[{"index":{"_id":"a","status":400,"error":{"type":"document_parsing_exception","reason":"bad","caused_by":{"type":"x","reason":"y"}}}},{"index":{"_id":"b","status":429,"error":"str"}}]}`,
		`{"errors":true,"items":[{"index":{"_id":"a","status":503}},{"index":{"_id":"b","status":200},"delete":{}}]}`,
		`{"errors":false,"items":null}`, `[]`, `null`, `{"errors":false,"items":[{}, {}]}`, "<html>",
	} {
		f.Add([]byte(seed))
	}
	ops := []op{{id: "a"}, {id: "b"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := parseBulk(body, ops)
		if err != nil {
			return
		}
		if len(res) != len(ops) {
			t.Fatalf("%d results for %d operations", len(res), len(ops))
		}
		for _, r := range res {
			if r.outcome > itemReject || (r.outcome != itemDone) != (r.err != nil) {
				t.Fatalf("result %+v", r)
			}
		}
	})
}
