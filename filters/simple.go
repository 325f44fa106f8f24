package filters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// simpleMatcher is the interim matcher of the event path: exact values,
// prefix and exists, evaluated rule by rule. The automaton of the full
// pattern language replaces it behind the same interface.
type simpleMatcher struct {
	rules []simpleRule
}

type simpleRule struct {
	name string
	p    *node
}

// node is a compiled pattern object: field -> either nested object or leaf.
type node struct {
	fields []field
}

type field struct {
	name   string
	nested *node
	alts   []alt // leaf alternatives, ORed
}

type alt struct {
	kind   string // "exact", "prefix", "exists"
	value  any    // exact: string, float64, bool, nil
	prefix string
	exists bool
}

func newSimpleMatcher(rules []Rule) (Matcher, error) {
	m := &simpleMatcher{}
	for _, r := range rules {
		p, err := compileSimple(r.Pattern)
		if err != nil {
			if pe, ok := err.(*PatternError); ok {
				pe.Rule = r.Name
			}
			return nil, err
		}
		m.rules = append(m.rules, simpleRule{name: r.Name, p: p})
	}
	return m, nil
}

func compileSimple(raw json.RawMessage) (*node, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return &node{}, nil
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, &PatternError{Msg: "not a JSON object: " + err.Error()}
	}
	return compileObject(obj, "")
}

func compileObject(obj map[string]any, path string) (*node, error) {
	n := &node{}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		name := k
		if path == "" {
			name = alias(k)
		}
		switch v := obj[k].(type) {
		case map[string]any:
			nested, err := compileObject(v, p)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, field{name: name, nested: nested})
		case []any:
			if len(v) == 0 {
				return nil, &PatternError{Path: p, Msg: "an empty array matches nothing; list at least one value"}
			}
			f := field{name: name}
			for i, e := range v {
				a, err := compileAlt(e, fmt.Sprintf("%s[%d]", p, i))
				if err != nil {
					return nil, err
				}
				f.alts = append(f.alts, a)
			}
			n.fields = append(n.fields, f)
		default:
			return nil, &PatternError{Path: p, Msg: "a leaf must be an array of values, e.g. [\"value\"]"}
		}
	}
	return n, nil
}

// alias maps AWS EventBridge attribute names to their CloudEvents equivalents.
func alias(k string) string {
	switch k {
	case "detail":
		return "data"
	case "detail-type":
		return "type"
	}
	return k
}

func compileAlt(v any, path string) (alt, error) {
	switch x := v.(type) {
	case string, bool, nil:
		return alt{kind: "exact", value: x}, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return alt{}, &PatternError{Path: path, Msg: "number out of range"}
		}
		return alt{kind: "exact", value: f}, nil
	case map[string]any:
		if len(x) != 1 {
			return alt{}, &PatternError{Path: path, Msg: "an operator object must hold exactly one operator"}
		}
		for op, arg := range x {
			switch op {
			case "prefix":
				s, ok := arg.(string)
				if !ok {
					return alt{}, &PatternError{Path: path + ".prefix", Msg: "prefix takes a string"}
				}
				return alt{kind: "prefix", prefix: s}, nil
			case "exists":
				b, ok := arg.(bool)
				if !ok {
					return alt{}, &PatternError{Path: path + ".exists", Msg: "exists takes true or false"}
				}
				return alt{kind: "exists", exists: b}, nil
			default:
				return alt{}, &PatternError{Path: path, Msg: fmt.Sprintf("unknown operator %q", op)}
			}
		}
	}
	return alt{}, &PatternError{Path: path, Msg: "unsupported value"}
}

func (m *simpleMatcher) Match(event []byte, dst []string) ([]string, error) {
	var ev map[string]any
	if err := json.Unmarshal(event, &ev); err != nil {
		return dst, fmt.Errorf("event is not a JSON object: %w", err)
	}
	for _, r := range m.rules {
		if matchNode(r.p, ev) {
			dst = append(dst, r.name)
		}
	}
	return dst, nil
}

func matchNode(n *node, obj map[string]any) bool {
	for _, f := range n.fields {
		v, present := obj[f.name]
		if f.nested != nil {
			sub, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if !matchNode(f.nested, sub) {
				return false
			}
			continue
		}
		if !matchLeaf(f.alts, v, present) {
			return false
		}
	}
	return true
}

func matchLeaf(alts []alt, v any, present bool) bool {
	_, isObj := v.(map[string]any)
	leafPresent := present && !isObj
	for _, a := range alts {
		if a.kind == "exists" {
			if a.exists == leafPresent {
				return true
			}
			continue
		}
		if !leafPresent {
			continue
		}
		if arr, ok := v.([]any); ok {
			for _, e := range arr {
				if matchValue(a, e) {
					return true
				}
			}
			continue
		}
		if matchValue(a, v) {
			return true
		}
	}
	return false
}

func matchValue(a alt, v any) bool {
	switch a.kind {
	case "exact":
		return a.value == v
	case "prefix":
		s, ok := v.(string)
		return ok && strings.HasPrefix(s, a.prefix)
	}
	return false
}
