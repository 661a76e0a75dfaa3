package collector

import (
	"math/rand/v2"
	"testing"
)

func TestThrottleRules(t *testing.T) {
	rules := []Rule{
		{Name: "has_comments", Key: "Comments", Percent: 100, Result: Accept},
		{Name: "firefox_sampled", Key: "ProductName", Values: []string{"Firefox"}, Percent: 10, Result: Accept},
		{Name: "thunderbird", Key: "ProductName", Values: []string{"Thunderbird", "SeaMonkey"}, Percent: 100, Result: Defer},
		{Name: "blocked", Key: "ProductName", Values: []string{"Blocked"}, Percent: 0, Result: Accept},
	}
	th, err := NewThrottler(rules, rand.New(rand.NewPCG(7, 7)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ann    map[string]string
		result Result
		rule   string
	}{
		{map[string]string{"ProductName": "Firefox", "Comments": "it crashed"}, Accept, "has_comments"},
		{map[string]string{"ProductName": "SeaMonkey"}, Defer, "thunderbird"},
		{map[string]string{"ProductName": "Blocked"}, Reject, "blocked"},
		{map[string]string{"ProductName": "Fennec"}, Reject, NoMatch},
		{map[string]string{}, Reject, NoMatch},
	} {
		if r, rule := th.Throttle(tc.ann); r != tc.result || rule != tc.rule {
			t.Errorf("%v: %v by %s, want %v by %s", tc.ann, r, rule, tc.result, tc.rule)
		}
	}

	// Sampling: of n Firefox crashes about 10% are accepted. With n = 20000 the count is
	// binomial with mean 2000 and standard deviation 42; 5 deviations either side is a bound
	// a correct sampler leaves once in millions of seeds (and the seed is fixed).
	const n = 20000
	accepted := 0
	for range n {
		r, rule := th.Throttle(map[string]string{"ProductName": "Firefox"})
		if rule != "firefox_sampled" {
			t.Fatalf("rule %s", rule)
		}
		if r == Accept {
			accepted++
		}
	}
	if accepted < 2000-5*42 || accepted > 2000+5*42 {
		t.Errorf("%d of %d accepted at 10%%", accepted, n)
	}

	all, _ := NewThrottler(AcceptAll, rand.New(rand.NewPCG(1, 1)))
	if r, rule := all.Throttle(map[string]string{}); r != Accept || rule != "accept_everything" {
		t.Errorf("default rules: %v %s", r, rule)
	}
	if _, err := NewThrottler([]Rule{{Percent: 10}}, nil); err == nil {
		t.Error("a rule without a name accepted")
	}
}
