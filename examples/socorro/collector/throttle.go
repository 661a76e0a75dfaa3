package collector

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Result is a throttle decision.
type Result int

const (
	// Accept stores the crash and processes it.
	Accept Result = iota
	// Defer stores the crash without processing it (the crash ID's throttle digit is 1).
	Defer
	// Reject discards the crash; the client is told which rule discarded it.
	Reject
)

func (r Result) digit() int {
	if r == Defer {
		return 1
	}
	return 0
}

func (r Result) String() string {
	switch r {
	case Accept:
		return "ACCEPT"
	case Defer:
		return "DEFER"
	case Reject:
		return "REJECT"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// Rule is one throttle rule. A rule matches a crash when Key is empty (every crash) or the
// crash's annotation Key has one of Values (or any value, when Values is empty). A matching rule
// decides: Result for Percent percent of the crashes it matches, chosen at random, Reject for
// the others. Rules are data, so a deployment changes its throttling by changing a list.
type Rule struct {
	// Name names the rule in logs, in the crash's metadata and in "Discarded=rule_<Name>".
	Name string
	// Key is the annotation the rule looks at ("ProductName"); empty matches every crash.
	Key string
	// Values are the annotation values the rule matches; empty matches any value present.
	Values []string
	// Percent is the share of matching crashes that get Result, 0 to 100.
	Percent int
	// Result is what a sampled-in crash gets.
	Result Result
}

// AcceptAll is the default rule list: every crash is accepted.
var AcceptAll = []Rule{{Name: "accept_everything", Percent: 100, Result: Accept}}

// NoMatch names the decision when no rule matched: the crash is rejected.
const NoMatch = "NO_MATCH"

// Throttler applies a rule list: the first matching rule decides. It is not safe for concurrent
// use (its random source is not); the Handler serialises calls.
type Throttler struct {
	rules []Rule
	rand  *rand.Rand
}

// NewThrottler checks the rules and returns a Throttler that samples with r.
func NewThrottler(rules []Rule, r *rand.Rand) (*Throttler, error) {
	for i, rule := range rules {
		if rule.Name == "" {
			return nil, fmt.Errorf("%w: throttle rule %d has no name", ErrInvalidConfig, i)
		}
		if rule.Percent < 0 || rule.Percent > 100 {
			return nil, fmt.Errorf("%w: throttle rule %q: percent %d is not in 0..100", ErrInvalidConfig, rule.Name, rule.Percent)
		}
		if rule.Result != Accept && rule.Result != Defer && rule.Result != Reject {
			return nil, fmt.Errorf("%w: throttle rule %q: unknown result %d", ErrInvalidConfig, rule.Name, rule.Result)
		}
	}
	return &Throttler{rules: slices.Clone(rules), rand: r}, nil
}

// Throttle decides for a crash with the given annotations and names the rule that decided.
func (t *Throttler) Throttle(annotations map[string]string) (Result, string) {
	for _, rule := range t.rules {
		if !rule.matches(annotations) {
			continue
		}
		if rule.Percent >= 100 || (rule.Percent > 0 && t.rand.IntN(100) < rule.Percent) {
			return rule.Result, rule.Name
		}
		return Reject, rule.Name
	}
	return Reject, NoMatch
}

func (r *Rule) matches(annotations map[string]string) bool {
	if r.Key == "" {
		return true
	}
	v, ok := annotations[r.Key]
	if !ok {
		return false
	}
	return len(r.Values) == 0 || slices.Contains(r.Values, v)
}
