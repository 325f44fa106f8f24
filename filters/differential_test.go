package filters

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// refRule is one pattern prepared for direct evaluation (no automaton).
type refRule struct {
	cp *compiledPattern
	a  *automaton
}

func newRefRule(cp *compiledPattern) *refRule {
	a := newAutomaton()
	for _, br := range cp.branches {
		for _, c := range br {
			c.pathID = a.pathID(c)
		}
	}
	return &refRule{cp: cp, a: a}
}

// refMatcher is a matcher built from patterns together with each rule's
// reference, to compare their verdicts (check).
type refMatcher struct {
	m     Matcher
	rules []Rule
	refs  []*refRule
}

// newRefMatcher compiles the patterns, the ith as rule "r<i>". A pattern
// that does not compile fails t, or is left out when skipBad.
func newRefMatcher(t *testing.T, patterns [][]byte, skipBad bool) *refMatcher {
	t.Helper()
	rm := &refMatcher{}
	for i, pb := range patterns {
		cp, err := compilePattern(pb, compileOpts{maxDepth: DefaultMaxPatternDepth})
		if err != nil {
			if skipBad {
				continue
			}
			t.Fatalf("%s: %v", pb, err)
		}
		rm.rules = append(rm.rules, Rule{Name: fmt.Sprintf("r%d", i), Pattern: pb})
		rm.refs = append(rm.refs, newRefRule(cp))
	}
	m, err := NewMatcher(rm.rules)
	if err != nil {
		t.Fatal(err)
	}
	rm.m = m
	return rm
}

// check matches event and calls differ with each rule whose verdict is not
// the reference's (want).
func (rm *refMatcher) check(t *testing.T, event []byte, differ func(r Rule, want bool)) {
	t.Helper()
	got, err := rm.m.Match(event, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rm.rules {
		want, err := referenceMatch(rm.refs[i], event)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(got, r.Name) != want {
			differ(r, want)
		}
	}
}

// referenceMatch evaluates one compiled pattern directly.
func referenceMatch(rr *refRule, event []byte) (bool, error) {
	cp, a := rr.cp, rr.a
	sc := newScratch(a.npaths, 0, 0)
	if err := sc.flatten(event, a.paths); err != nil {
		return false, err
	}
	for _, br := range cp.branches {
		ok, err := sc.evalBranch(orderBranch(br, nil))
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// gen builds random patterns and events over a small vocabulary so that
// matches, near misses and array cases are frequent.
type gen struct{ r *rand.Rand }

var genPaths = [][]string{
	{"source"}, {"type"}, {"data", "a"}, {"data", "b"}, {"data", "tags"},
	{"data", "items", "x"}, {"data", "items", "y"}, {"data", "items", "sub", "z"},
	{"data", "n", "m"},
}

var genStrings = []string{"", "a", "ab", "abc", "A", "Ab", "b", "ba", "x*y", "10.0.0.1", "2001:db8::1", "é", "É"}

func (g gen) str() string { return genStrings[g.r.IntN(len(genStrings))] }

func (g gen) num() float64 {
	return []float64{0, 1, 1.5, 2, 10, 100, -1, 3e2, 300}[g.r.IntN(9)]
}

func (g gen) scalar() any {
	switch g.r.IntN(6) {
	case 0, 1:
		return g.str()
	case 2, 3:
		return g.num()
	case 4:
		return g.r.IntN(2) == 0
	}
	return nil
}

func (g gen) alt() any {
	switch g.r.IntN(16) {
	case 0:
		return map[string]any{"prefix": g.str()}
	case 1:
		return map[string]any{"suffix": map[string]any{"equals-ignore-case": g.str()}}
	case 2:
		return map[string]any{"equals-ignore-case": g.str()}
	case 3:
		return map[string]any{"wildcard": []string{"*", "a*", "*b", "a*b*", "x\\*y", "*a*"}[g.r.IntN(6)]}
	case 4:
		if g.r.IntN(2) == 0 {
			return map[string]any{"anything-but": []any{g.str(), g.str()}}
		}
		return map[string]any{"anything-but": g.num()}
	case 5:
		return map[string]any{"anything-but": map[string]any{"prefix": g.str()}}
	case 6:
		lo := g.num()
		if g.r.IntN(2) == 0 {
			return map[string]any{"numeric": []any{">=", lo}}
		}
		return map[string]any{"numeric": []any{">", lo, "<=", lo + float64(g.r.IntN(200))}}
	case 7:
		return map[string]any{"cidr": []string{"10.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"}[g.r.IntN(3)]}
	case 8:
		return map[string]any{"exists": g.r.IntN(2) == 0}
	case 9:
		return map[string]any{"contains": []string{"a", "b", "*"}[g.r.IntN(3)]}
	case 10:
		return map[string]any{"prefix": map[string]any{"equals-ignore-case": g.str()}}
	case 11:
		return map[string]any{"suffix": g.str()}
	}
	return g.scalar()
}

func setPath(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

func (g gen) pattern(depth int) map[string]any {
	p := map[string]any{}
	for range 1 + g.r.IntN(3) {
		path := genPaths[g.r.IntN(len(genPaths))]
		var alts []any
		for range 1 + g.r.IntN(3) {
			alts = append(alts, g.alt())
		}
		setPath(p, path, alts)
	}
	if depth < 2 && g.r.IntN(4) == 0 {
		p["$or"] = []any{g.pattern(depth + 1), g.pattern(depth + 1)}
	}
	return p
}

func (g gen) event() map[string]any {
	ev := map[string]any{"specversion": "1.0", "id": "1", "source": g.str(), "type": g.str()}
	data := map[string]any{}
	if g.r.IntN(2) == 0 {
		data["a"] = g.scalar()
	}
	if g.r.IntN(2) == 0 {
		data["b"] = g.scalar()
	} else if g.r.IntN(3) == 0 {
		data["b"] = map[string]any{"c": 1}
	}
	if g.r.IntN(2) == 0 {
		var tags []any
		for range g.r.IntN(4) {
			tags = append(tags, g.scalar())
		}
		data["tags"] = tags
	}
	if g.r.IntN(2) == 0 {
		var items []any
		for range g.r.IntN(4) {
			it := map[string]any{}
			if g.r.IntN(3) > 0 {
				it["x"] = g.scalar()
			}
			if g.r.IntN(3) > 0 {
				it["y"] = g.scalar()
			}
			if g.r.IntN(3) == 0 {
				var subs []any
				for range g.r.IntN(3) {
					subs = append(subs, map[string]any{"z": g.scalar()})
				}
				it["sub"] = subs
			}
			items = append(items, it)
		}
		data["items"] = items
	}
	if g.r.IntN(3) == 0 {
		data["n"] = []any{map[string]any{"m": g.scalar()}, map[string]any{"m": []any{g.scalar(), g.scalar()}}}
	}
	ev["data"] = data
	return ev
}

// TestAutomatonMatchesReference checks, on random patterns and events, that
// the shared automaton of many rules gives each rule the same answer as the
// direct evaluation of that rule alone.
func TestAutomatonMatchesReference(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(1, 2))}
	iters := 150
	if testing.Short() {
		iters = 30
	}
	for it := range iters {
		patterns := make([][]byte, 60)
		for i := range patterns {
			patterns[i], _ = json.Marshal(g.pattern(0))
		}
		// An invalid generated pattern (e.g. an empty range) is left out.
		rm := newRefMatcher(t, patterns, true)
		for range 30 {
			eb, _ := json.Marshal(g.event())
			rm.check(t, eb, func(r Rule, want bool) {
				t.Fatalf("iteration %d: rule %s\npattern %s\nevent %s\nautomaton %v, reference %v", it, r.Name, r.Pattern, eb, !want, want)
			})
		}
	}
}

func TestMatchRejectsMalformedEvents(t *testing.T) {
	m, err := NewMatcher([]Rule{{Name: "r", Pattern: []byte(`{"data":{"a":["x"]}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{
		``, `[]`, `"x"`, `{`, `{"a":}`, `{"a":1,}`, `{"data":{"a":"x"}`, `{"data":{"a":"x"}} x`,
		`{"data":{"a":"\x"}}`, `{"data":{"a":01}}`, `{"data":{"b":[1,]}}`, `{"data":{"b":{"c":tru}}}`,
		`{"data":{"a":"` + "\x01" + `"}}`, strings.Repeat("[", 2000),
		`{"data":` + strings.Repeat("[", 1100) + strings.Repeat("]", 1100) + `}`,
	} {
		if got, err := m.Match([]byte(ev), nil); err == nil {
			t.Errorf("Match(%.40q) = %v, want an error", ev, got)
		}
	}
}

// Patterns with fields in several independent arrays meet events whose
// arrays match element by element as a product of combinations; past the
// step budget Match fails with ErrTooComplex instead of stalling.
func TestTooComplex(t *testing.T) {
	pattern := []byte(`{"data":{"a":{"x":[1]},"b":{"x":[1]},"c":{"x":[1]},"d":{"x":[1]},"e":{"x":[{"exists":false}]}}}`)
	arr := "[" + strings.TrimSuffix(strings.Repeat(`{"x":1},`, 60), ",") + "]"
	ev := []byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":` + arr + `,"b":` + arr + `,"c":` + arr + `,"d":` + arr + `,"e":[{"x":2}]}}`)
	m, err := NewMatcher([]Rule{{Name: "r", Pattern: pattern}, {Name: "easy", Pattern: []byte(`{"source":["s"]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := m.Match(ev, nil); !errors.Is(err, ErrTooComplex) {
		t.Errorf("Match error = %v, want ErrTooComplex", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if _, err := Explain(pattern, ev); !errors.Is(err, ErrTooComplex) {
		t.Errorf("Explain error = %v, want ErrTooComplex", err)
	}
	// The same matcher keeps working for ordinary events.
	got, err := m.Match([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t"}`), nil)
	if err != nil || !slices.Equal(got, []string{"easy"}) {
		t.Errorf("after ErrTooComplex: %v %v", got, err)
	}
}
