package filters

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The conformance suite lives in testdata/conformance/*.json, one file per
// operator, each case a pattern, an event and the expected result, built
// from the documented EventBridge semantics (and busbar's stated choices
// where the documentation is silent). A case may give "data" instead of a
// whole "event": it is then wrapped in a CloudEvent from source "test" of
// type "order.created".

type confFile struct {
	Operator string     `json:"operator"`
	Cases    []confCase `json:"cases"`
	Errors   []confErr  `json:"errors"`
}

type confCase struct {
	Name    string          `json:"name"`
	Pattern json.RawMessage `json:"pattern"`
	Event   json.RawMessage `json:"event"`
	Data    json.RawMessage `json:"data"`
	Match   bool            `json:"match"`
}

type confErr struct {
	Pattern     json.RawMessage `json:"pattern"`
	PatternText string          `json:"patternText"`
	LongPattern int             `json:"longPattern"`
	Path        *string         `json:"path"`
	Message     string          `json:"message"`
	Offset      *int            `json:"offset"`
}

func (c confCase) event() []byte {
	if c.Event != nil {
		return c.Event
	}
	return []byte(`{"specversion":"1.0","id":"e-1","source":"test","type":"order.created","time":"2024-05-01T10:00:00Z","datacontenttype":"application/json","data":` + string(c.Data) + `}`)
}

func loadConformance(t testing.TB) map[string]confFile {
	t.Helper()
	files, err := filepath.Glob("testdata/conformance/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files: %v", err)
	}
	out := map[string]confFile{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cf confFile
		if err := json.Unmarshal(b, &cf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = cf
	}
	return out
}

func TestConformance(t *testing.T) {
	all := loadConformance(t)
	var rules []Rule
	type ref struct {
		rule string
		c    confCase
	}
	var refs []ref
	for file, cf := range all {
		for _, c := range cf.Cases {
			name := file + "/" + c.Name
			rules = append(rules, Rule{Name: name, Pattern: c.Pattern})
			refs = append(refs, ref{name, c})
			t.Run(name, func(t *testing.T) {
				m, err := NewMatcher([]Rule{{Name: "r", Pattern: c.Pattern}})
				if err != nil {
					t.Fatalf("pattern %s: %v", c.Pattern, err)
				}
				got, err := m.Match(c.event(), nil)
				if err != nil {
					t.Fatalf("event: %v", err)
				}
				if (len(got) == 1) != c.Match {
					t.Errorf("pattern %s\nevent %s\nmatch = %v, want %v", c.Pattern, c.event(), len(got) == 1, c.Match)
				}
				res, err := Explain(c.Pattern, c.event())
				if err != nil {
					t.Fatalf("Explain: %v", err)
				}
				if res.Match != c.Match {
					t.Errorf("Explain match = %v, want %v (%+v)", res.Match, c.Match, res)
				}
				if !res.Match && res.FailedField == "" && res.Reason == "" {
					t.Errorf("Explain gives no reason for a non-match: %+v", res)
				}
			})
		}
	}
	// Every case again, with all patterns of the suite in one matcher: the
	// shared automaton must answer each rule as if it were alone.
	m, err := NewMatcher(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		got, err := m.Match(r.c.event(), nil)
		if err != nil {
			t.Fatalf("%s: %v", r.rule, err)
		}
		if slices.Contains(got, r.rule) != r.c.Match {
			t.Errorf("shared matcher: %s: match = %v, want %v", r.rule, !r.c.Match, r.c.Match)
		}
		if !slices.IsSorted(indexesOf(rules, got)) {
			t.Errorf("shared matcher: matches not in rule order: %v", got)
		}
	}
}

func indexesOf(rules []Rule, names []string) []int {
	var out []int
	for _, n := range names {
		out = append(out, slices.IndexFunc(rules, func(r Rule) bool { return r.Name == n }))
	}
	return out
}

func TestConformanceErrors(t *testing.T) {
	for file, cf := range loadConformance(t) {
		for i, c := range cf.Errors {
			pattern := []byte(c.Pattern)
			switch {
			case c.PatternText != "":
				pattern = []byte(c.PatternText)
			case c.LongPattern > 0:
				pattern = []byte(`{"source":["` + strings.Repeat("x", c.LongPattern-14) + `"]}`)
			}
			err := ValidatePattern(pattern)
			var pe *PatternError
			if !errors.As(err, &pe) {
				t.Errorf("%s #%d %s: want a *PatternError, got %v", file, i, pattern, err)
				continue
			}
			if !strings.Contains(pe.Msg, c.Message) {
				t.Errorf("%s #%d %s: message %q does not contain %q", file, i, pattern, pe.Msg, c.Message)
			}
			if c.Path != nil && pe.Path != *c.Path {
				t.Errorf("%s #%d %s: path %q, want %q", file, i, pattern, pe.Path, *c.Path)
			}
			if c.Offset != nil && pe.Offset != *c.Offset {
				t.Errorf("%s #%d %s: offset %d, want %d", file, i, pattern, pe.Offset, *c.Offset)
			}
			if _, err := NewMatcher([]Rule{{Name: "bad", Pattern: pattern}}); err == nil || !strings.Contains(err.Error(), `rule "bad"`) {
				t.Errorf("%s #%d: NewMatcher error %v does not name the rule", file, i, err)
			}
		}
	}
}
