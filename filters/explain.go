package filters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// This file explains why one pattern does or does not match one event, for
// `busbar test-pattern` and POST /v1/test-pattern. It evaluates the pattern
// directly, condition by condition, with the same value semantics as the
// automaton (alt.match), so it doubles as the reference the automaton is
// tested against.

// Result is the outcome of testing one pattern (and optionally a filter)
// against one event.
type Result struct {
	// Match is true when the pattern (and the filter, if any) holds.
	Match bool `json:"match"`
	// FailedField is the event path of the first condition that failed, in
	// pattern order, empty on a match or when only the filter failed.
	FailedField string `json:"failedField,omitempty"`
	// Reason says in words why the event did not match.
	Reason string `json:"reason,omitempty"`
	// Branches explains each alternative of the pattern: one unless $or
	// expands it into several. The pattern matches when any branch does.
	Branches []BranchResult `json:"branches"`
	// Filter is the filter's result when a filter was given.
	Filter *bool `json:"filter,omitempty"`
}

// BranchResult explains one alternative of the pattern.
type BranchResult struct {
	Match  bool          `json:"match"`
	Fields []FieldResult `json:"fields"`
	// Reason is set when every field holds on its own but not together:
	// the values come from different elements of one array.
	Reason string `json:"reason,omitempty"`
}

// FieldResult explains one condition (one leaf array of the pattern).
type FieldResult struct {
	Path        string            `json:"path"`        // event path, e.g. "data.amount"
	PatternPath string            `json:"patternPath"` // where the condition is in the pattern
	Condition   json.RawMessage   `json:"condition"`   // the leaf array as written
	Values      []json.RawMessage `json:"values"`      // the event's leaf values at Path
	Match       bool              `json:"match"`       // the condition holds on its own
}

// Explain tests one pattern against one event. The event may be a
// structured-mode CloudEvent or an AWS EventBridge event (detail-type and
// detail are read as type and data).
func Explain(pattern, event []byte) (Result, error) {
	return ExplainRule(Rule{Pattern: pattern}, event)
}

// ExplainRule is Explain for a whole rule: pattern and filter must hold.
func ExplainRule(r Rule, event []byte, opts ...Option) (Result, error) {
	cp, err := compilePattern(r.Pattern, buildOptions(opts).compile())
	if err != nil {
		return Result{}, err
	}
	var fp *filterProgram
	if r.Filter != "" {
		if fp, err = compileFilter(r.Filter); err != nil {
			return Result{}, err
		}
	}
	event = awsToCloudEvent(event)
	a := newAutomaton()
	for _, br := range cp.branches {
		for _, c := range br {
			c.pathID = a.pathID(c)
		}
	}
	sc := newScratch(a.npaths, 0, 0)
	if err := sc.flatten(event, a.paths); err != nil {
		return Result{}, fmt.Errorf("event is not valid JSON: %w", err)
	}
	res := Result{Branches: []BranchResult{}}
	best := -1
	bestScore := -1
	for bi, br := range cp.branches {
		b := BranchResult{Fields: []FieldResult{}}
		conds := append(branch(nil), br...)
		sort.SliceStable(conds, func(i, j int) bool { return conds[i].off < conds[j].off })
		all := true
		score := 0
		for _, c := range conds {
			fr := FieldResult{Path: c.path, PatternPath: c.patPath, Values: []json.RawMessage{}}
			if end, err := skipValue(r.Pattern, c.off, 0); err == nil {
				fr.Condition = compact(r.Pattern[c.off:end])
			}
			any := false
			for fi := sc.head[c.pathID]; fi >= 0; fi = sc.fields[fi].next {
				f := &sc.fields[fi]
				fr.Values = append(fr.Values, fieldJSON(f))
				if specMatch(c.spec, f, sc) {
					any = true
				}
			}
			fr.Match = any || c.spec.absent && sc.head[c.pathID] < 0
			if fr.Match {
				score++
			}
			all = all && fr.Match
			b.Fields = append(b.Fields, fr)
		}
		ok, err := sc.evalBranch(orderBranch(br, nil))
		if err != nil {
			return Result{}, err
		}
		b.Match = ok
		if all && !ok {
			b.Reason = "every field matches on its own, but not within the same array element"
		}
		if ok {
			res.Match = true
		}
		if !ok && score > bestScore {
			best, bestScore = bi, score
		}
		res.Branches = append(res.Branches, b)
	}
	if !res.Match {
		res.FailedField, res.Reason = failure(res.Branches[best])
		return res, nil
	}
	if fp != nil {
		v := fp.eval(sc, event)
		res.Filter = &v
		if !v {
			res.Match = false
			res.Reason = "the pattern matches but the filter returned false (or failed at run time)"
		}
	}
	return res, nil
}

func failure(b BranchResult) (string, string) {
	for _, f := range b.Fields {
		if f.Match {
			continue
		}
		if len(f.Values) == 0 {
			return f.Path, fmt.Sprintf("%s: the event has no value here; the pattern wants %s", f.Path, f.Condition)
		}
		vals := make([]string, len(f.Values))
		for i, v := range f.Values {
			vals[i] = string(v)
		}
		return f.Path, fmt.Sprintf("%s: the event has %s; the pattern wants %s", f.Path, strings.Join(vals, ", "), f.Condition)
	}
	return "", b.Reason
}

func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return append(json.RawMessage(nil), b...)
	}
	return buf.Bytes()
}

func fieldJSON(f *evField) json.RawMessage {
	switch f.kind {
	case evString:
		b, _ := json.Marshal(string(f.val))
		return b
	case evNumber:
		return append(json.RawMessage(nil), f.val...)
	case evTrue:
		return json.RawMessage("true")
	case evFalse:
		return json.RawMessage("false")
	}
	return json.RawMessage("null")
}

func specMatch(s *spec, f *evField, sc *scratch) bool {
	for i := range s.alts {
		if s.alts[i].match(f, sc) {
			return true
		}
	}
	return false
}

// evalBranch is the reference evaluation of one branch, in chain order,
// choosing event leaves with backtracking so that fields of one array
// element stay together.
func (sc *scratch) evalBranch(conds branch) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, isAbort := r.(walkAbort); !isAbort {
				panic(r)
			}
			ok, err = false, ErrTooComplex
		}
	}()
	sc.steps = 0
	sc.used = sc.used[:0]
	return sc.evalFrom(conds, 0), nil
}

func (sc *scratch) evalFrom(conds branch, k int) bool {
	sc.steps++
	if sc.steps > maxSteps {
		panic(walkAbort{})
	}
	if k == len(conds) {
		return true
	}
	c := conds[k]
	for fi := sc.head[c.pathID]; fi >= 0; fi = sc.fields[fi].next {
		f := &sc.fields[fi]
		if !sc.compatible(f) || !specMatch(c.spec, f, sc) {
			continue
		}
		pushed := f.trailN > 0
		if pushed {
			sc.used = append(sc.used, fi)
		}
		ok := sc.evalFrom(conds, k+1)
		if pushed {
			sc.used = sc.used[:len(sc.used)-1]
		}
		if ok {
			return true
		}
	}
	return c.spec.absent && sc.absent(c.pathID) && sc.evalFrom(conds, k+1)
}

// awsToCloudEvent lets test tools take AWS-shaped events: when the event has
// no specversion but has detail or detail-type, those become data and type.
func awsToCloudEvent(event []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(event, &top) != nil {
		return event
	}
	if _, ce := top["specversion"]; ce {
		return event
	}
	d, hasD := top["detail"]
	dt, hasDT := top["detail-type"]
	if !hasD && !hasDT {
		return event
	}
	if hasD {
		delete(top, "detail")
		top["data"] = d
	}
	if hasDT {
		delete(top, "detail-type")
		top["type"] = dt
	}
	out, err := json.Marshal(top)
	if err != nil {
		return event
	}
	return out
}
