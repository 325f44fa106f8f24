package filters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file turns pattern text into branches: each branch is a conjunction
// of conditions, one per (event path, leaf array), and a pattern is the
// disjunction of its branches ($or expands into branches). Every problem is
// a *PatternError pointing at the offending value.

// Defaults for the limits a pattern must respect; see the Option functions.
const (
	DefaultMaxPatternLength = 2048
	DefaultMaxPatternDepth  = 32
	// maxBranches bounds how many alternatives a pattern may expand to
	// through $or (the product of nested $or sizes).
	maxBranches = 1024
)

// jnode is a parsed JSON value that remembers where it was in the text.
type jnode struct {
	kind  byte // 'o' object, 'a' array, 's' string, 'n' number, 't', 'f', 'z' (null)
	off   int
	str   string // string value, or the number's text
	keys  []string
	kvals []*jnode
	elems []*jnode
}

func parsePatternJSON(b []byte, maxDepth int) (*jnode, error) {
	p := &pparser{b: b, maxDepth: maxDepth}
	n, i, err := p.value(0, 0, "")
	if err != nil {
		return nil, err
	}
	if i = skipWS(b, i); i != len(b) {
		return nil, &PatternError{Offset: i, Msg: "unexpected text after the pattern object"}
	}
	return n, nil
}

type pparser struct {
	b        []byte
	maxDepth int
}

func (p *pparser) value(i, depth int, path string) (*jnode, int, error) {
	b := p.b
	i = skipWS(b, i)
	if i >= len(b) {
		return nil, 0, &PatternError{Path: path, Offset: i, Msg: "unexpected end of pattern"}
	}
	n := &jnode{off: i}
	switch c := b[i]; {
	case c == '{' || c == '[':
		if depth >= p.maxDepth {
			return nil, 0, &PatternError{Path: path, Offset: i, Msg: fmt.Sprintf("pattern is nested more than %d levels deep", p.maxDepth)}
		}
		if c == '{' {
			return p.object(n, i, depth, path)
		}
		return p.array(n, i, depth, path)
	case c == '"':
		end, esc, err := scanString(b, i)
		if err != nil {
			return nil, 0, p.synErr(path, err)
		}
		n.kind = 's'
		if esc {
			n.str = string(unescape(nil, b[i+1:end-1]))
		} else {
			n.str = string(b[i+1 : end-1])
		}
		return n, end, nil
	case c == '-' || '0' <= c && c <= '9':
		end, err := scanNumber(b, i)
		if err != nil {
			return nil, 0, p.synErr(path, err)
		}
		n.kind, n.str = 'n', string(b[i:end])
		return n, end, nil
	case c == 't' || c == 'f' || c == 'n':
		lit := map[byte]string{'t': "true", 'f': "false", 'n': "null"}[c]
		end, err := scanLiteral(b, i, lit)
		if err != nil {
			return nil, 0, p.synErr(path, err)
		}
		n.kind = c
		if c == 'n' {
			n.kind = 'z'
		}
		return n, end, nil
	default:
		return nil, 0, &PatternError{Path: path, Offset: i, Msg: "invalid JSON: unexpected character " + strconv.QuoteRune(rune(c))}
	}
}

func (p *pparser) synErr(path string, err error) error {
	se := err.(*SyntaxError)
	return &PatternError{Path: path, Offset: se.Offset, Msg: "invalid JSON: " + se.Msg}
}

func (p *pparser) object(n *jnode, i, depth int, path string) (*jnode, int, error) {
	b := p.b
	n.kind = 'o'
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return n, i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, 0, &PatternError{Path: path, Offset: i, Msg: "invalid JSON: expected a quoted field name"}
		}
		kn, end, err := p.value(i, depth+1, path)
		if err != nil {
			return nil, 0, err
		}
		for _, k := range n.keys {
			if k == kn.str {
				return nil, 0, &PatternError{Path: joinPath(path, kn.str), Offset: i, Msg: "field appears twice in the same object"}
			}
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, 0, &PatternError{Path: path, Offset: i, Msg: "invalid JSON: expected ':'"}
		}
		v, end, err := p.value(i+1, depth+1, joinPath(path, kn.str))
		if err != nil {
			return nil, 0, err
		}
		n.keys = append(n.keys, kn.str)
		n.kvals = append(n.kvals, v)
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return n, i + 1, nil
		}
		return nil, 0, &PatternError{Path: path, Offset: i, Msg: "invalid JSON: expected ',' or '}'"}
	}
}

func (p *pparser) array(n *jnode, i, depth int, path string) (*jnode, int, error) {
	b := p.b
	n.kind = 'a'
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return n, i + 1, nil
	}
	for {
		v, end, err := p.value(i, depth+1, fmt.Sprintf("%s[%d]", path, len(n.elems)))
		if err != nil {
			return nil, 0, err
		}
		n.elems = append(n.elems, v)
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == ']' {
			return n, i + 1, nil
		}
		return nil, 0, &PatternError{Path: path, Offset: i, Msg: "invalid JSON: expected ',' or ']'"}
	}
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// op is the kind of one alternative in a leaf array.
type op uint8

const (
	opString      op = iota + 1 // exact string
	opNumber                    // exact number (numeric equality)
	opTrue                      // true
	opFalse                     // false
	opNull                      // null
	opExists                    // exists: true (any leaf value)
	opAbsent                    // exists: false
	opPrefix                    // prefix
	opPrefixFold                // prefix + equals-ignore-case
	opSuffix                    // suffix
	opSuffixFold                // suffix + equals-ignore-case
	opFold                      // equals-ignore-case
	opWildcard                  // wildcard
	opAnythingBut               // anything-but (any form)
	opNumeric                   // numeric range
	opCIDR                      // cidr
	opContains                  // busbar extension: substring
	opRegex                     // busbar extension: RE2 regular expression
)

// alt is one alternative of a leaf array.
type alt struct {
	op   op
	s    string  // string operand (folded for the *Fold ops)
	num  float64 // opNumber
	rng  numRange
	pfx  netip.Prefix
	wc   *wildcard
	re   *regexp.Regexp
	anti *antiSpec
	key  string // canonical form, for sharing identical conditions
}

// numRange is a numeric interval; an open side has an infinite bound.
type numRange struct {
	lo, hi       float64
	loInc, hiInc bool
}

func (r numRange) contains(x float64) bool {
	if x < r.lo || x == r.lo && !r.loInc {
		return false
	}
	if x > r.hi || x == r.hi && !r.hiInc {
		return false
	}
	return true
}

// spec is one leaf array: alternatives ORed.
type spec struct {
	alts   []alt // without the exists:false alternative
	absent bool  // one alternative is exists:false
	key    string
	class  int // ordering class, see specClass
}

// cond is one leaf condition of a branch: the event path and its spec.
type cond struct {
	segs    []string // event path segments (aliases resolved)
	path    string   // dotted event path, for messages
	patPath string   // dotted path inside the pattern, for messages
	off     int      // offset of the leaf array in the pattern text
	spec    *spec
	pathID  int32 // assigned when the matcher is built
}

type branch []*cond

// compiledPattern is the result of compiling one pattern.
type compiledPattern struct {
	branches []branch
}

type compileOpts struct {
	maxLen   int
	maxDepth int
}

func compilePattern(raw []byte, o compileOpts) (*compiledPattern, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return &compiledPattern{branches: []branch{nil}}, nil
	}
	root, err := parsePatternJSON(raw, o.maxDepth)
	if err != nil {
		return nil, err
	}
	if root.kind != 'o' {
		return nil, &PatternError{Offset: root.off, Msg: "a pattern must be a JSON object such as {\"source\": [\"erp\"]}"}
	}
	if o.maxLen > 0 {
		var cb bytes.Buffer
		if err := json.Compact(&cb, raw); err == nil {
			if n := utf8.RuneCount(cb.Bytes()); n > o.maxLen {
				return nil, &PatternError{Offset: -1, Msg: fmt.Sprintf("pattern is %d characters long (without spaces); the limit is %d", n, o.maxLen)}
			}
		}
	}
	c := &patCompiler{}
	brs, err := c.object(root, nil, "", true)
	if err != nil {
		return nil, err
	}
	return &compiledPattern{branches: brs}, nil
}

type patCompiler struct{}

// awsAlias maps AWS EventBridge envelope names to CloudEvents attributes so
// that AWS patterns work unchanged.
func awsAlias(k string) string {
	switch k {
	case "detail":
		return "data"
	case "detail-type":
		return "type"
	}
	return k
}

// object compiles a pattern object found at event path segs.
func (c *patCompiler) object(n *jnode, segs []string, patPath string, top bool) ([]branch, error) {
	if len(n.keys) == 0 {
		if top {
			return []branch{nil}, nil
		}
		return nil, &PatternError{Path: patPath, Offset: n.off, Msg: "an empty object has no conditions; remove it or add fields"}
	}
	result := []branch{nil}
	for i, k := range n.keys {
		v := n.kvals[i]
		pp := joinPath(patPath, k)
		var fb []branch
		switch {
		case k == "$or":
			if v.kind != 'a' || len(v.elems) < 2 {
				return nil, &PatternError{Path: pp, Offset: v.off, Msg: "$or takes an array of two or more pattern objects"}
			}
			for j, e := range v.elems {
				ep := fmt.Sprintf("%s[%d]", pp, j)
				if e.kind != 'o' {
					return nil, &PatternError{Path: ep, Offset: e.off, Msg: "each $or alternative must be a pattern object"}
				}
				sub, err := c.object(e, segs, ep, false)
				if err != nil {
					return nil, err
				}
				fb = append(fb, sub...)
				if len(fb) > maxBranches {
					return nil, &PatternError{Path: pp, Offset: v.off, Msg: fmt.Sprintf("$or expands to more than %d alternatives", maxBranches)}
				}
			}
		case v.kind == 'o':
			name := k
			if len(segs) == 0 {
				name = awsAlias(k)
			}
			sub, err := c.object(v, appendSeg(segs, name), pp, false)
			if err != nil {
				return nil, err
			}
			fb = sub
		case v.kind == 'a':
			name := k
			if len(segs) == 0 {
				name = awsAlias(k)
			}
			s, err := compileSpec(v, pp)
			if err != nil {
				return nil, err
			}
			es := appendSeg(segs, name)
			fb = []branch{{&cond{segs: es, path: strings.Join(es, "."), patPath: pp, off: v.off, spec: s}}}
		default:
			return nil, &PatternError{Path: pp, Offset: v.off, Msg: fmt.Sprintf("a field's value must be an array of alternatives (e.g. [%s]) or a nested object", jsonText(v))}
		}
		if len(result)*len(fb) > maxBranches {
			return nil, &PatternError{Path: pp, Offset: v.off, Msg: fmt.Sprintf("$or expands to more than %d alternatives", maxBranches)}
		}
		next := make([]branch, 0, len(result)*len(fb))
		for _, r := range result {
			for _, b := range fb {
				nb := make(branch, 0, len(r)+len(b))
				nb = append(append(nb, r...), b...)
				next = append(next, nb)
			}
		}
		result = next
	}
	return result, nil
}

func appendSeg(segs []string, s string) []string {
	out := make([]string, len(segs)+1)
	copy(out, segs)
	out[len(segs)] = s
	return out
}

func jsonText(n *jnode) string {
	switch n.kind {
	case 's':
		return strconv.Quote(n.str)
	case 'n':
		return n.str
	case 't':
		return "true"
	case 'f':
		return "false"
	case 'z':
		return "null"
	}
	return "…"
}

const operatorList = "prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, cidr, exists, contains, regex"

func compileSpec(n *jnode, path string) (*spec, error) {
	if len(n.elems) == 0 {
		return nil, &PatternError{Path: path, Offset: n.off, Msg: "an empty array matches nothing; list at least one value"}
	}
	s := &spec{}
	seen := map[string]bool{}
	for i, e := range n.elems {
		ep := fmt.Sprintf("%s[%d]", path, i)
		a, err := compileAlt(e, ep)
		if err != nil {
			return nil, err
		}
		if a.op == opAbsent {
			s.absent = true
			continue
		}
		if seen[a.key] {
			continue
		}
		seen[a.key] = true
		s.alts = append(s.alts, a)
	}
	keys := make([]string, 0, len(s.alts)+1)
	for _, a := range s.alts {
		keys = append(keys, a.key)
	}
	sort.Strings(keys)
	if s.absent {
		keys = append(keys, "absent")
	}
	s.key = strings.Join(keys, "\x00")
	s.class = specClass(s)
	return s, nil
}

// specClass orders the conditions of a branch: selective, hash-indexed
// conditions first so that the automaton narrows the candidate rules as
// early as possible; exists:false last, once every positive field is chosen.
func specClass(s *spec) int {
	if s.absent {
		if len(s.alts) == 0 {
			return 5
		}
		return 4
	}
	c := 0
	for _, a := range s.alts {
		k := 0
		switch a.op {
		case opString, opNumber, opTrue, opFalse, opNull, opFold:
			k = 0
		case opPrefix, opPrefixFold, opSuffix, opSuffixFold, opCIDR:
			k = 1
		case opNumeric, opWildcard, opContains, opRegex:
			k = 2
		default: // anything-but, exists:true
			k = 3
		}
		c = max(c, k)
	}
	return c
}

func parseNumber(text string) (float64, bool) {
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	if f == 0 {
		f = 0 // -0 and 0 are the same number
	}
	return f, true
}

func numKey(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func compileAlt(e *jnode, path string) (alt, error) {
	perr := func(p string, n *jnode, format string, args ...any) (alt, error) {
		return alt{}, &PatternError{Path: p, Offset: n.off, Msg: fmt.Sprintf(format, args...)}
	}
	switch e.kind {
	case 's':
		return alt{op: opString, s: e.str, key: "s" + strconv.Quote(e.str)}, nil
	case 'n':
		f, ok := parseNumber(e.str)
		if !ok {
			return perr(path, e, "number %s is outside the float64 range", e.str)
		}
		return alt{op: opNumber, num: f, key: "n" + numKey(f)}, nil
	case 't':
		return alt{op: opTrue, key: "t"}, nil
	case 'f':
		return alt{op: opFalse, key: "f"}, nil
	case 'z':
		return alt{op: opNull, key: "z"}, nil
	case 'a':
		return perr(path, e, "arrays cannot be nested inside a leaf array")
	}
	if len(e.keys) != 1 {
		return perr(path, e, "an operator object holds exactly one operator (one of %s)", operatorList)
	}
	name, v := e.keys[0], e.kvals[0]
	p := path + "." + name
	switch name {
	case "prefix", "suffix":
		fold := false
		str, ok := "", false
		if v.kind == 's' {
			str, ok = v.str, true
		} else if v.kind == 'o' && len(v.keys) == 1 && v.keys[0] == "equals-ignore-case" && v.kvals[0].kind == 's' {
			str, ok, fold = v.kvals[0].str, true, true
		}
		if !ok {
			return perr(p, v, "%s takes a string or {\"equals-ignore-case\": string}", name)
		}
		a := alt{op: opPrefix, s: str}
		if name == "suffix" {
			a.op = opSuffix
		}
		if fold {
			a.op++
			a.s = foldString(str)
		}
		a.key = fmt.Sprintf("%d%q", a.op, a.s)
		return a, nil
	case "equals-ignore-case":
		if v.kind != 's' {
			return perr(p, v, "equals-ignore-case takes a string")
		}
		f := foldString(v.str)
		return alt{op: opFold, s: f, key: "i" + strconv.Quote(f)}, nil
	case "wildcard":
		if v.kind != 's' {
			return perr(p, v, "wildcard takes a string")
		}
		wc, err := compileWildcard(v.str)
		if err != nil {
			return perr(p, v, "%s", err.Error())
		}
		return alt{op: opWildcard, wc: wc, key: "w" + strconv.Quote(v.str)}, nil
	case "anything-but":
		as, err := compileAnythingBut(v, p)
		if err != nil {
			return alt{}, err
		}
		return alt{op: opAnythingBut, anti: as, key: "!" + as.key}, nil
	case "numeric":
		r, err := compileNumeric(v, p)
		if err != nil {
			return alt{}, err
		}
		return alt{op: opNumeric, rng: r, key: fmt.Sprintf("r%t%s,%s%t", r.loInc, numKey(r.lo), numKey(r.hi), r.hiInc)}, nil
	case "cidr":
		if v.kind != 's' {
			return perr(p, v, "cidr takes a string such as \"10.0.0.0/8\" or \"2001:db8::/32\"")
		}
		pf, err := netip.ParsePrefix(v.str)
		if err != nil {
			return perr(p, v, "invalid CIDR block %q: use address/bits, e.g. \"10.0.0.0/8\" or \"2001:db8::/32\"", v.str)
		}
		pf = pf.Masked()
		return alt{op: opCIDR, pfx: pf, key: "c" + pf.String()}, nil
	case "exists":
		switch v.kind {
		case 't':
			return alt{op: opExists, key: "e"}, nil
		case 'f':
			return alt{op: opAbsent, key: "absent"}, nil
		}
		return perr(p, v, "exists takes true or false")
	case "contains":
		if v.kind != 's' || v.str == "" {
			return perr(p, v, "contains (a busbar extension) takes a non-empty string")
		}
		return alt{op: opContains, s: v.str, key: "k" + strconv.Quote(v.str)}, nil
	case "regex":
		if v.kind != 's' {
			return perr(p, v, "regex (a busbar extension) takes a string in RE2 syntax")
		}
		re, err := regexp.Compile(v.str)
		if err != nil {
			return perr(p, v, "invalid regex: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		return alt{op: opRegex, re: re, key: "x" + strconv.Quote(v.str)}, nil
	}
	return perr(path, e, "unknown operator %q; valid operators: %s", name, operatorList)
}

func compileNumeric(v *jnode, p string) (numRange, error) {
	bad := func(n *jnode, msg string) (numRange, error) {
		return numRange{}, &PatternError{Path: p, Offset: n.off, Msg: msg}
	}
	const usage = `numeric takes one or two comparisons, e.g. [">", 0] or [">=", 0, "<", 100]`
	if v.kind != 'a' || (len(v.elems) != 2 && len(v.elems) != 4) {
		return bad(v, usage)
	}
	r := numRange{lo: math.Inf(-1), hi: math.Inf(1), loInc: true, hiInc: true}
	var haveLo, haveHi bool
	for i := 0; i < len(v.elems); i += 2 {
		o, n := v.elems[i], v.elems[i+1]
		if o.kind != 's' {
			return bad(o, usage)
		}
		if n.kind != 'n' {
			return bad(n, "numeric compares with a number, got "+jsonText(n))
		}
		f, ok := parseNumber(n.str)
		if !ok {
			return bad(n, "number "+n.str+" is outside the float64 range")
		}
		switch o.str {
		case "=":
			if len(v.elems) != 2 {
				return bad(o, `"=" cannot be combined with another comparison`)
			}
			r = numRange{lo: f, hi: f, loInc: true, hiInc: true}
			haveLo, haveHi = true, true
		case ">", ">=":
			if haveLo {
				return bad(o, "two lower bounds; use one of > or >= and one of < or <=")
			}
			r.lo, r.loInc, haveLo = f, o.str == ">=", true
		case "<", "<=":
			if haveHi {
				return bad(o, "two upper bounds; use one of > or >= and one of < or <=")
			}
			r.hi, r.hiInc, haveHi = f, o.str == "<=", true
		default:
			return bad(o, fmt.Sprintf("unknown comparison %q; use =, <, <=, > or >=", o.str))
		}
	}
	if r.lo > r.hi || r.lo == r.hi && !(r.loInc && r.hiInc) {
		return bad(v, "the range is empty: the lower bound must be below the upper bound")
	}
	return r, nil
}

// antiSpec is the operand of anything-but: the values it excludes.
type antiSpec struct {
	kind  op // opString (strings), opNumber (numbers), opPrefix, opSuffix, opFold, opWildcard
	strs  []string
	nums  []float64
	wcs   []*wildcard
	key   string
	vText string // for explanations
}

func compileAnythingBut(v *jnode, p string) (*antiSpec, error) {
	bad := func(n *jnode, msg string) (*antiSpec, error) {
		return nil, &PatternError{Path: p, Offset: n.off, Msg: msg}
	}
	as := &antiSpec{}
	switch v.kind {
	case 's':
		as.kind, as.strs = opString, []string{v.str}
	case 'n':
		f, ok := parseNumber(v.str)
		if !ok {
			return bad(v, "number "+v.str+" is outside the float64 range")
		}
		as.kind, as.nums = opNumber, []float64{f}
	case 'a':
		if len(v.elems) == 0 {
			return bad(v, "anything-but needs at least one value")
		}
		for _, e := range v.elems {
			switch e.kind {
			case 's':
				if as.kind == opNumber {
					return bad(e, "anything-but lists must hold only strings or only numbers")
				}
				as.kind = opString
				as.strs = append(as.strs, e.str)
			case 'n':
				if as.kind == opString {
					return bad(e, "anything-but lists must hold only strings or only numbers")
				}
				f, ok := parseNumber(e.str)
				if !ok {
					return bad(e, "number "+e.str+" is outside the float64 range")
				}
				as.kind = opNumber
				as.nums = append(as.nums, f)
			default:
				return bad(e, "anything-but lists hold strings or numbers, got "+jsonText(e))
			}
		}
	case 'o':
		if len(v.keys) != 1 {
			return bad(v, "anything-but takes one of prefix, suffix, equals-ignore-case or wildcard")
		}
		k, o := v.keys[0], v.kvals[0]
		strs, ok := []string(nil), true
		switch o.kind {
		case 's':
			strs = []string{o.str}
		case 'a':
			if k == "prefix" || k == "suffix" || len(o.elems) == 0 {
				ok = false
			}
			for _, e := range o.elems {
				if e.kind != 's' {
					ok = false
				}
				strs = append(strs, e.str)
			}
		default:
			ok = false
		}
		switch k {
		case "prefix", "suffix":
			if !ok {
				return bad(o, "anything-but "+k+" takes a string")
			}
			as.kind = opPrefix
			if k == "suffix" {
				as.kind = opSuffix
			}
			as.strs = strs
		case "equals-ignore-case":
			if !ok {
				return bad(o, "anything-but equals-ignore-case takes a string or a list of strings")
			}
			as.kind = opFold
			for _, s := range strs {
				as.strs = append(as.strs, foldString(s))
			}
		case "wildcard":
			if !ok {
				return bad(o, "anything-but wildcard takes a string or a list of strings")
			}
			as.kind = opWildcard
			as.strs = strs
			for _, s := range strs {
				wc, err := compileWildcard(s)
				if err != nil {
					return bad(o, err.Error())
				}
				as.wcs = append(as.wcs, wc)
			}
		default:
			return bad(v, fmt.Sprintf("anything-but does not take %q; use a value, a list, or one of prefix, suffix, equals-ignore-case, wildcard", k))
		}
	default:
		return bad(v, "anything-but takes a string, a number, a list of either, or an object with prefix, suffix, equals-ignore-case or wildcard")
	}
	var parts []string
	for _, s := range as.strs {
		parts = append(parts, strconv.Quote(s))
	}
	for _, f := range as.nums {
		parts = append(parts, numKey(f))
	}
	sort.Strings(parts)
	as.key = fmt.Sprintf("%d[%s]", as.kind, strings.Join(parts, ","))
	return as, nil
}
