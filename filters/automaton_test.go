package filters

import (
	"encoding/json"
	"fmt"
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
			TestFoldAndCIDRKeys(t)
		})
	}
}

// TestFoldAndCIDRKeys checks case-folded keys (compared without folding
// the value when the compared part is ASCII) and CIDR keys (values that
// cannot be in an IPv4 block are not parsed) against the reference, with
// values whose fold differs in length or turns non-ASCII into ASCII.
func TestFoldAndCIDRKeys(t *testing.T) {
	alts := []any{
		map[string]any{"equals-ignore-case": "ok"},
		map[string]any{"prefix": map[string]any{"equals-ignore-case": "ka"}},
		map[string]any{"suffix": map[string]any{"equals-ignore-case": "@ok"}},
		map[string]any{"suffix": map[string]any{"equals-ignore-case": "é"}},
		map[string]any{"cidr": "10.1.0.0/16"},
		map[string]any{"cidr": "100.0.0.0/8"},
		map[string]any{"cidr": "0.0.0.0/8"},
		map[string]any{"cidr": "8.0.0.0/7"},
		map[string]any{"cidr": "1.2.3.0/24"},
		map[string]any{"cidr": "1.2.3.4/32"},
		map[string]any{"cidr": "::ffff:10.0.0.0/104"},
		map[string]any{"cidr": "fe80::/10"},
	}
	values := []any{"OK", "oK", "\u212A", "o\u212A", "\u212Aa", "KA", "Kab", "x@OK", "x@o\u212A", "\xffok", "ok\xff",
		"É", "xé", "xÉ", "10.1.2.3", "010.1.2.3", "10.1.2.3%eth0", "::ffff:10.1.2.3", "10.2.3.4", "100.1.2.3",
		"0.1.2.3", "9.1.2.3", "8.255.0.1", "1.2.3.4", "1.2.3.45", "1.2.30.4", "1.2.3", "10", "10.", "fe80::1", "fe80::1%eth0", 10, ""}
	var patterns [][]byte
	for _, a := range alts {
		pb, _ := json.Marshal(map[string]any{"data": map[string]any{"id": []any{a}}})
		patterns = append(patterns, pb)
	}
	rm := newRefMatcher(t, patterns, false)
	for _, v := range values {
		eb, _ := json.Marshal(map[string]any{"data": map[string]any{"id": v}})
		if s, ok := v.(string); ok {
			eb = []byte(`{"data":{"id":"` + s + `"}}`) // escapes and invalid UTF-8 as written
		}
		rm.check(t, eb, func(r Rule, want bool) {
			t.Errorf("%s, event %s: automaton %v, reference %v", r.Pattern, eb, !want, want)
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
	var patterns [][]byte
	for _, re := range regexes {
		pb, _ := json.Marshal(map[string]any{"data": map[string]any{"id": []any{map[string]any{"regex": re}}}})
		patterns = append(patterns, pb)
	}
	rm := newRefMatcher(t, patterns, false)
	for _, v := range values {
		eb, _ := json.Marshal(map[string]any{"data": map[string]any{"id": v}})
		if s, ok := v.(string); ok && s == "\xff" {
			eb = []byte(`{"data":{"id":"` + s + `"}}`) // invalid UTF-8 as is
		}
		rm.check(t, eb, func(r Rule, want bool) {
			t.Errorf("%s, event %s: automaton %v, reference %v", r.Pattern, eb, !want, want)
		})
	}
}
