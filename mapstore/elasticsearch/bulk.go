package elasticsearch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The pure half of the bulk API: encoding the operations of a bulk request and classifying the
// items of its answer. writer.go sends them.

// op is one operation of a bulk request, encoded once and re-sent as is when retried.
type op struct {
	key  []byte // the map's key, to report a rejection
	id   string // its _id, to check the answer
	line []byte // the action line and, for an index operation, the document line, each ending in \n
}

// appendAction appends a bulk action line: {"<action>":{"_index":...,"_id":...}}\n.
func appendAction(b []byte, action, index, id string) []byte {
	b = append(b, `{"`...)
	b = append(b, action...)
	b = append(b, `":{"_index":`...)
	b = appendString(b, index)
	b = append(b, `,"_id":`...)
	b = appendString(b, id)
	return append(b, "}}\n"...)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// errNotObject refuses a document that is not one JSON object.
var errNotObject = errors.New("the document is not a JSON object")

// appendDoc appends doc as one line of a bulk body: it must be a JSON object, and one spanning
// several lines is compacted (a bulk body is one JSON value per line).
func appendDoc(b, doc []byte) ([]byte, error) {
	if !isObject(doc) {
		return b, errNotObject
	}
	if bytes.ContainsAny(doc, "\n\r") {
		var c bytes.Buffer
		if err := json.Compact(&c, doc); err != nil {
			return b, errNotObject
		}
		doc = c.Bytes()
	}
	b = append(b, doc...)
	return append(b, '\n'), nil
}

// outcome is what became of one item of a bulk request.
type outcome uint8

const (
	itemDone   outcome = iota // applied
	itemRetry                 // refused for now (429, a 5xx for this document): send it again
	itemReject                // refused for good (a 4xx such as a mapping error)
)

// itemResult is the outcome of one item with the server's reason.
type itemResult struct {
	outcome   outcome
	status    int
	throttled bool  // the server answered 429: slow down
	err       error // why it was refused
}

type bulkAnswer struct {
	Errors *bool                 `json:"errors"`
	Items  []map[string]bulkItem `json:"items"`
}

type bulkItem struct {
	ID     string          `json:"_id"`
	Status int             `json:"status"`
	Result string          `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// serverError is the "error" object of an item or an answer.
type serverError struct {
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	CausedBy *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"caused_by"`
}

// describe turns a raw "error" value into a readable reason.
func describe(raw json.RawMessage) string {
	var e serverError
	if json.Unmarshal(raw, &e) != nil || e.Type == "" {
		return string(raw)
	}
	s := e.Type + ": " + e.Reason
	if e.CausedBy != nil && e.CausedBy.Type != "" {
		s += " (caused by " + e.CausedBy.Type + ": " + e.CausedBy.Reason + ")"
	}
	return s
}

// parseBulk classifies the items of the answer to a bulk request of ops. An answer that is not
// a bulk answer for exactly these operations is ErrBadResponse: then nothing is known of what
// the server applied.
func parseBulk(body []byte, ops []op) ([]itemResult, error) {
	var a bulkAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("%w: bulk answer is not JSON: %v (%s)", ErrBadResponse, err, snippet(body))
	}
	if a.Errors == nil || len(a.Items) != len(ops) {
		return nil, fmt.Errorf("%w: bulk answer with %d items for %d operations (%s)", ErrBadResponse, len(a.Items), len(ops), snippet(body))
	}
	out := make([]itemResult, len(ops))
	for i, m := range a.Items {
		if len(m) != 1 {
			return nil, fmt.Errorf("%w: bulk item %d has %d actions", ErrBadResponse, i, len(m))
		}
		for action, it := range m {
			if it.ID != ops[i].id || it.Status == 0 {
				return nil, fmt.Errorf("%w: bulk item %d is %s of _id %q with status %d, want _id %q", ErrBadResponse, i, action, it.ID, it.Status, ops[i].id)
			}
			out[i] = classify(action, it)
		}
	}
	return out, nil
}

// classify says what an item's status means.
func classify(action string, it bulkItem) itemResult {
	r := itemResult{status: it.Status}
	switch s := it.Status; {
	case s >= 200 && s < 300:
		r.outcome = itemDone
	case s == 404 && action == "delete":
		r.outcome = itemDone // deleting a missing document, or from a missing index
	case s == 429:
		r.outcome, r.throttled = itemRetry, true
	case s >= 500 || s == 408 || s == 409:
		r.outcome = itemRetry
	default:
		r.outcome = itemReject
	}
	if r.outcome != itemDone {
		r.err = fmt.Errorf("%s: HTTP %d: %s", action, it.Status, describe(it.Error))
	}
	return r
}

// snippet returns the start of a body for an error message.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
