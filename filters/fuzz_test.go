package filters

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// Fuzz targets. The seed corpus is the conformance suite plus the inputs
// kept in testdata/fuzz/<Target>/; run for example
//
//	go test ./filters -run '^$' -fuzz FuzzPattern -fuzztime 60s
//	go test ./filters -run '^$' -fuzz FuzzEvent -fuzztime 60s
//
// Invariants: no panic and no hang on any input; a pattern that validates
// compiles into a matcher; the automaton agrees with the direct evaluation;
// the flattener accepts exactly the valid JSON objects.

var fuzzEvents = []string{
	`{"specversion":"1.0","id":"1","source":"erp","type":"order.created","data":{"a":"x","b":1,"tags":["a","b"],"items":[{"x":1,"y":"a"},{"x":2}]}}`,
	`{"specversion":"1.0","id":"2","source":"crm","type":"t","subject":"s","data":{"a":3e2,"b":null,"ip":"10.1.2.3","items":[]}}`,
	`{"specversion":"1.0","id":"3","source":"s","type":"t","data":{"b":{"c":true},"a":["é","É",2001]}}`,
}

func FuzzPattern(f *testing.F) {
	for _, cf := range loadConformance(f) {
		for _, c := range cf.Cases {
			f.Add([]byte(c.Pattern))
		}
		for _, e := range cf.Errors {
			if e.Pattern != nil {
				f.Add([]byte(e.Pattern))
			}
			if e.PatternText != "" {
				f.Add([]byte(e.PatternText))
			}
		}
	}
	f.Fuzz(func(t *testing.T, pattern []byte) {
		defer watchdog(pattern)()
		err := ValidatePattern(pattern)
		if err != nil {
			var pe *PatternError
			if !errors.As(err, &pe) {
				t.Fatalf("ValidatePattern error is %T, want *PatternError: %v", err, err)
			}
			return
		}
		m, err := NewMatcher([]Rule{{Name: "r", Pattern: pattern}})
		if err != nil {
			t.Fatalf("validated pattern does not compile: %v", err)
		}
		cp, err := compilePattern(pattern, compileOpts{maxLen: DefaultMaxPatternLength, maxDepth: DefaultMaxPatternDepth})
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefRule(cp)
		for _, ev := range fuzzEvents {
			got, err := m.Match([]byte(ev), nil)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			want, err := referenceMatch(ref, []byte(ev))
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) == 1) != want {
				t.Fatalf("automaton %v, reference %v for event %s", len(got) == 1, want, ev)
			}
			if _, err := Explain(pattern, []byte(ev)); err != nil {
				t.Fatalf("Explain: %v", err)
			}
		}
	})
}

var fuzzEventMatcher = sync.OnceValues(func() (*engine, []*refRule) {
	var rules []Rule
	var refs []*refRule
	files := loadConformance(&testing.T{})
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for i, c := range files[n].Cases {
			rules = append(rules, Rule{Name: fmt.Sprintf("%s/%d", n, i), Pattern: c.Pattern})
			cp, err := compilePattern(c.Pattern, compileOpts{maxDepth: DefaultMaxPatternDepth})
			if err != nil {
				panic(err)
			}
			refs = append(refs, newRefRule(cp))
		}
	}
	e, err := newEngine(rules, buildOptions(nil))
	if err != nil {
		panic(err)
	}
	return e, refs
})

func FuzzEvent(f *testing.F) {
	for _, ev := range fuzzEvents {
		f.Add([]byte(ev))
	}
	for _, cf := range loadConformance(f) {
		for _, c := range cf.Cases {
			f.Add(c.event())
		}
	}
	f.Fuzz(func(t *testing.T, event []byte) {
		defer watchdog(event)()
		m, refs := fuzzEventMatcher()
		got, err := m.Match(event, nil)
		valid := json.Valid(event) && len(event) > 0 && firstNonSpace(event) == '{'
		if err != nil {
			if errors.Is(err, ErrTooComplex) {
				return
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Match error is not a *SyntaxError: %v", err)
			}
			if valid && !tooDeep(event) {
				t.Fatalf("valid JSON object rejected: %v", err)
			}
			return
		}
		if !valid {
			t.Fatalf("invalid JSON accepted: %q", event)
		}
		for i, rr := range refs {
			want, err := referenceMatch(rr, event)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(got, m.rules[i].name) != want {
				t.Fatalf("rule %s: automaton %v, reference %v", m.rules[i].name, !want, want)
			}
		}
	})
}

// watchdog crashes the fuzz worker, naming the input, when one call takes
// longer than any input should; the fuzzer then keeps the input as a failure.
func watchdog(input []byte) (stop func()) {
	tm := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("input took over 5s: %q", input)) })
	return func() { tm.Stop() }
}

func firstNonSpace(b []byte) byte {
	i := skipWS(b, 0)
	if i < len(b) {
		return b[i]
	}
	return 0
}

// tooDeep reports whether the JSON nests deeper than the matcher accepts.
func tooDeep(b []byte) bool {
	d, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			d++
			if d >= maxJSONDepth {
				return true
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return false
}
