package elasticsearch

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// indexPattern is Config.Index parsed: a fixed name, or a name with time verbs that puts each
// document in the index of its time period (Socorro: "socorro%Y%W", one index a week).
type indexPattern struct {
	parts []patternPart
	timed bool
}

// patternPart is literal text, or a time verb (verb != 0).
type patternPart struct {
	text string
	verb byte
}

// timeVerbs are the verbs an index pattern may hold, as in strftime; times are taken in UTC.
const timeVerbs = "YmdWVGH"

// parseIndex parses an index name or pattern: %Y year, %m month (01-12), %d day (01-31), %H hour
// (00-23), %W week of the year with weeks starting on Monday, the days before the first Monday
// being week 00 (00-53, as strftime and Python), %V ISO 8601 week (01-53) with %G its year, %%
// a percent sign.
func parseIndex(s string) (indexPattern, error) {
	var p indexPattern
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return p, fmt.Errorf("index %q ends with a lone %%", s)
		}
		i++
		v := s[i]
		if v == '%' {
			lit.WriteByte('%')
			continue
		}
		if !strings.ContainsRune(timeVerbs, rune(v)) {
			return p, fmt.Errorf("index %q: unknown verb %%%c (known: %%Y %%m %%d %%H %%W %%V %%G %%%%)", s, v)
		}
		if lit.Len() > 0 {
			p.parts = append(p.parts, patternPart{text: lit.String()})
			lit.Reset()
		}
		p.parts = append(p.parts, patternPart{verb: v})
		p.timed = true
	}
	if lit.Len() > 0 {
		p.parts = append(p.parts, patternPart{text: lit.String()})
	}
	if len(p.parts) == 0 {
		return p, fmt.Errorf("index name is empty")
	}
	name := p.wildcard()
	if name != strings.ToLower(name) || strings.ContainsAny(name, `\/?"<>| ,#:`) || strings.HasPrefix(name, "_") ||
		strings.HasPrefix(name, "-") || strings.HasPrefix(name, "+") {
		return p, fmt.Errorf("index %q: Elasticsearch index names are lowercase, without \\ / ? \" < > | space , # : and do not start with _ - +", s)
	}
	return p, nil
}

// name returns the index of time t (any t for a fixed name).
func (p indexPattern) name(t time.Time) string {
	t = t.UTC()
	var b strings.Builder
	two := func(n int) {
		if n < 10 {
			b.WriteByte('0')
		}
		b.WriteString(strconv.Itoa(n))
	}
	for _, part := range p.parts {
		switch part.verb {
		case 0:
			b.WriteString(part.text)
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'm':
			two(int(t.Month()))
		case 'd':
			two(t.Day())
		case 'H':
			two(t.Hour())
		case 'W':
			two(mondayWeek(t))
		case 'V':
			_, w := t.ISOWeek()
			two(w)
		case 'G':
			y, _ := t.ISOWeek()
			b.WriteString(strconv.Itoa(y))
		}
	}
	return b.String()
}

// mondayWeek is strftime's %W: the week of the year, weeks starting on Monday, the days before
// the year's first Monday in week 0.
func mondayWeek(t time.Time) int {
	yday := t.YearDay() - 1
	wday := (int(t.Weekday()) + 6) % 7 // Monday 0
	return (yday + 7 - wday) / 7
}

// wildcard returns an index expression matching every index of the pattern (each verb a *).
func (p indexPattern) wildcard() string {
	var b strings.Builder
	for _, part := range p.parts {
		if part.verb == 0 {
			b.WriteString(part.text)
		} else if !strings.HasSuffix(b.String(), "*") {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// base returns the pattern's literal text, to name its index template.
func (p indexPattern) base() string {
	var b strings.Builder
	for _, part := range p.parts {
		b.WriteString(part.text)
	}
	return strings.Trim(b.String(), "-_.")
}
