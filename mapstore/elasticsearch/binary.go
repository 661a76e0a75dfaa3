package elasticsearch

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// BinaryMappings maps the field of WrapBinary as a binary field (stored, not indexed).
const BinaryMappings = `{"dynamic":false,"properties":{"value":{"type":"binary"}}}`

// WrapBinary is a Config.Document hook for values that are not JSON: the document is
// {"value":"<base64 of the value>"}. Pair it with UnwrapBinary and BinaryMappings.
func WrapBinary(_, value []byte) ([]byte, error) {
	b := make([]byte, 0, base64.StdEncoding.EncodedLen(len(value))+12)
	b = append(b, `{"value":"`...)
	b = base64.StdEncoding.AppendEncode(b, value)
	return append(b, `"}`...), nil
}

// UnwrapBinary is the Config.Value hook that undoes WrapBinary.
func UnwrapBinary(_, source []byte) ([]byte, error) {
	var d struct {
		Value *string `json:"value"`
	}
	if err := json.Unmarshal(source, &d); err != nil || d.Value == nil {
		return nil, fmt.Errorf("%w: document without a binary value", ErrBadResponse)
	}
	v, err := base64.StdEncoding.DecodeString(*d.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: binary value: %v", ErrBadResponse, err)
	}
	return v, nil
}
