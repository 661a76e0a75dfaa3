package processor

import "errors"

// ErrInvalidRules is returned by ParseRules for rules that do not parse or compile.
var ErrInvalidRules = errors.New("processor: invalid signature rules")
