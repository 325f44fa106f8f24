package filters

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// TestAutomatonLayouts runs the conformance tables and the random
// comparison with the reference again with every string key in the
// strTable (no small key lists) and every prefix and suffix in a trie, and
// with every key in small key lists, so that each layout of a transition
// is checked, whatever the sizes the tests happen to produce.
func TestAutomatonLayouts(t *testing.T) {
	defer func(s, m int) { smallKeys, maxAffixLens = s, m }(smallKeys, maxAffixLens)
	for _, l := range []struct{ small, affix int }{{0, 0}, {0, 8}, {200, 0}} {
		smallKeys, maxAffixLens = l.small, l.affix
		t.Run(fmt.Sprintf("small=%d,affixLens=%d", l.small, l.affix), func(t *testing.T) {
			TestConformance(t)
			TestAutomatonMatchesReference(t)
			TestRegexLiterals(t)
		})
	}
}

// TestRegexLiterals checks the regexes indexed as prefixes or exact strings
// (anchored literals) and their neighbours that are not, against the
// reference.
func TestRegexLiterals(t *testing.T) {
	regexes := []string{`^ORD-3`, `^ORD-3$`, `^ORD`, `ORD-3`, `^ORD-3.`, `(?i)^ord-3`, `^ORD-3|^X`, `^(ORD)`,
		`^\QORD-3\E`, `^é`, `^\x{FFFD}`, `^`, `^$`, `^ORD-3\z`, `(?m)^ORD-3$`}
	values := []any{"ORD-3", "ORD-31", "ord-3", "xORD-3", "ORD-", "", "é!", "\xff", "\ufffd", 3, "ORD-3\n", "X"}
	var rules []Rule
	var refs []*refRule
	for i, re := range regexes {
		pb, _ := json.Marshal(map[string]any{"data": map[string]any{"id": []any{map[string]any{"regex": re}}}})
		cp, err := compilePattern(pb, compileOpts{maxDepth: DefaultMaxPatternDepth})
		if err != nil {
			t.Fatalf("%s: %v", re, err)
		}
		rules = append(rules, Rule{Name: fmt.Sprintf("r%d", i), Pattern: pb})
		refs = append(refs, newRefRule(cp))
	}
	m, err := NewMatcher(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		eb, _ := json.Marshal(map[string]any{"data": map[string]any{"id": v}})
		if s, ok := v.(string); ok && s == "\xff" {
			eb = []byte(`{"data":{"id":"` + s + `"}}`) // invalid UTF-8 as is
		}
		got, err := m.Match(eb, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rules {
			want, err := referenceMatch(refs[i], eb)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(got, r.Name) != want {
				t.Errorf("regex %q, event %s: automaton %v, reference %v", regexes[i], eb, !want, want)
			}
		}
	}
}
