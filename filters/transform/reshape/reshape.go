package reshape

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"sync"
)

// Forms of a transform.
const (
	FormWhole    = "whole"
	FormData     = "data"
	FormPart     = "part"
	FormConstant = "constant"
	FormTemplate = "template"
	FormExpr     = "expr"
)

// Forms lists the forms, the default first.
var Forms = []string{FormWhole, FormData, FormPart, FormConstant, FormTemplate, FormExpr}

// Content types of transform outputs.
const (
	ContentTypeCloudEvent = "application/cloudevents+json; charset=utf-8"
	ContentTypeJSON       = "application/json"
	ContentTypeText       = "text/plain; charset=utf-8"
)

// MaxMasks is how many masks one transform may have.
const MaxMasks = 100

// DefaultMaxBodyBytes bounds an output when Options leave it unset.
const DefaultMaxBodyBytes = 4 << 20

// Spec is a transform as configured: one form and any masks. The field
// names follow the config (config.Transform), which this package does not
// import so that config can compile transforms to validate them.
type Spec struct {
	Form     string            // "" means inferred from the fields set, else whole
	Path     string            // part
	Constant *string           // constant
	Paths    map[string]string // template: variable name -> JSONPath
	Template string            // template
	Expr     string            // expr
	Mask     []MaskSpec
}

// MaskSpec is one mask: a path and what to do with the values it reaches.
type MaskSpec struct {
	Path        string
	Action      string
	Replacement *string // redact; nil means DefaultReplacement
	Key         string  // hash
	KeepFirst   int     // partial
	KeepLast    int     // partial
}

// FormOf returns the form s stands for: Form when set, else the form of the
// one form field set (path, constant, template, expr), else whole.
func (s *Spec) FormOf() string {
	if s.Form != "" {
		return s.Form
	}
	switch {
	case s.Template != "" || len(s.Paths) > 0:
		return FormTemplate
	case s.Expr != "":
		return FormExpr
	case s.Constant != nil:
		return FormConstant
	case s.Path != "":
		return FormPart
	}
	return FormWhole
}

// Options tune a compiled transform.
type Options struct {
	// MaxBodyBytes bounds what one Apply may produce; 0 means
	// DefaultMaxBodyBytes. A bigger output is a transform failure.
	MaxBodyBytes int
}

// Meta is what a transform knows of where the event is going.
type Meta struct {
	Rule string // the rule's name
	Bus  string // the bus's name
}

// Error is one problem with a Spec. Field is the field it is about,
// relative to the transform ("template", "paths.orderId", "mask[1].path");
// Line and Column, from 1, point inside that field's text when known.
type Error struct {
	Field        string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	s := e.Field
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d, column %d)", e.Line, e.Column)
	}
	return s + ": " + e.Msg
}

// Errors is every problem Compile found, in field order.
type Errors []*Error

func (l Errors) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// ErrFailed marks every error Apply returns: the event cannot be
// transformed (it lacks what the transform needs in a way that cannot
// be papered over, is not valid JSON, or the expression failed), and trying
// again will not change that.
var ErrFailed = errors.New("transform failed")

// Program is a compiled transform, safe for concurrent use.
type Program struct {
	form     string
	masks    []*mask
	path     *Path
	constant []byte
	ctype    string // of constant
	tpl      *template
	expr     *exprProgram
	limit    int
}

// Compile checks and compiles s. Every problem is reported, as Errors.
func Compile(s Spec, opts Options) (*Program, error) {
	c := &compiler{}
	p := c.compile(&s)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	p.limit = opts.MaxBodyBytes
	if p.limit <= 0 {
		p.limit = DefaultMaxBodyBytes
	}
	return p, nil
}

type compiler struct{ errs Errors }

func (c *compiler) add(field string, line, col int, format string, args ...any) {
	c.errs = append(c.errs, &Error{Field: field, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
}

// addAt reports a problem at a byte offset of a one-field text (-1: none).
func (c *compiler) addAt(field, text string, off int, format string, args ...any) {
	line, col := 0, 0
	if off >= 0 {
		line, col = lineCol(text, off)
	}
	c.add(field, line, col, format, args...)
}

func lineCol(s string, off int) (int, int) {
	off = min(off, len(s))
	before := s[:off]
	line := strings.Count(before, "\n") + 1
	col := off - strings.LastIndexByte(before, '\n')
	return line, col
}

func (c *compiler) compile(s *Spec) *Program {
	p := &Program{form: s.FormOf()}
	if s.Form != "" && !slices.Contains(Forms, s.Form) {
		c.add("form", 0, 0, "%q is not a transform form (use %s)", s.Form, strings.Join(quoteAll(Forms), ", "))
		return p
	}
	// Fields of other forms are mistakes: say which form they belong to.
	owner := map[string]string{"path": FormPart, "constant": FormConstant, "paths": FormTemplate, "template": FormTemplate, "expr": FormExpr}
	set := map[string]bool{"path": s.Path != "", "constant": s.Constant != nil, "paths": len(s.Paths) > 0, "template": s.Template != "", "expr": s.Expr != ""}
	for _, f := range []string{"path", "constant", "paths", "template", "expr"} {
		if set[f] && owner[f] != p.form {
			if s.Form == "" {
				c.add(f, 0, 0, "%s belongs to the %s form, but %s is set too; a transform has one form", f, owner[f], formField(p.form))
			} else {
				c.add(f, 0, 0, "%s belongs to the %s form, not %s; remove it or set form: %s", f, owner[f], p.form, owner[f])
			}
		}
	}
	switch p.form {
	case FormPart:
		if s.Path == "" {
			c.add("path", 0, 0, "the part form needs path: a JSONPath such as $.data.order")
			break
		}
		p.path = c.path("path", s.Path)
	case FormConstant:
		if s.Constant == nil {
			c.add("constant", 0, 0, "the constant form needs constant: the JSON or text to send")
			break
		}
		p.constant = []byte(*s.Constant)
		p.ctype = ContentTypeText
		if t := bytes.TrimSpace(p.constant); len(t) > 0 && json.Valid(t) {
			p.ctype = ContentTypeJSON
		}
	case FormTemplate:
		p.tpl = c.template(s)
	case FormExpr:
		p.expr = c.expr(s.Expr)
	}
	if len(s.Mask) > MaxMasks {
		c.add("mask", 0, 0, "%d masks; at most %d", len(s.Mask), MaxMasks)
	}
	for i := range s.Mask {
		if m := c.mask(fmt.Sprintf("mask[%d]", i), &s.Mask[i]); m != nil {
			p.masks = append(p.masks, m)
		}
	}
	return p
}

func formField(form string) string {
	switch form {
	case FormPart:
		return "path"
	case FormConstant:
		return "constant"
	case FormTemplate:
		return "template"
	case FormExpr:
		return "expr"
	}
	return form
}

func quoteAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}

func (c *compiler) path(field, src string) *Path {
	p, err := ParsePath(src)
	if err != nil {
		pe := err.(*pathError)
		c.addAt(field, src, pe.Offset, "%s", pe.Msg)
		return nil
	}
	return p
}

func (c *compiler) template(s *Spec) *template {
	if s.Template == "" {
		c.add("template", 0, 0, "the template form needs template: JSON or text with <variable> placeholders")
		return nil
	}
	if len(s.Paths) > MaxVariables {
		c.add("paths", 0, 0, "%d variables; at most %d", len(s.Paths), MaxVariables)
	}
	names := make([]string, 0, len(s.Paths))
	for n := range s.Paths {
		names = append(names, n)
	}
	slices.Sort(names)
	paths := map[string]*Path{}
	ok := true
	for _, n := range names {
		field := "paths." + n
		switch {
		case strings.HasPrefix(n, ReservedPrefix):
			c.add(field, 0, 0, "variable names starting with %q are reserved (%s need no path)", ReservedPrefix, strings.Join(reservedList(), ", "))
			ok = false
			continue
		case !varName.MatchString(n):
			c.add(field, 0, 0, "%q is not a variable name: use letters, digits, '_', '.' and '-', at most 64 characters", n)
			ok = false
			continue
		}
		if p := c.path(field, s.Paths[n]); p != nil {
			paths[n] = p
		} else {
			ok = false
		}
	}
	t, err := compileTemplate(s.Template, paths)
	if err != nil {
		te := err.(*templateError)
		c.addAt("template", s.Template, te.Offset, "%s", te.Msg)
		return nil
	}
	if !ok {
		return nil
	}
	return t
}

func (c *compiler) expr(src string) *exprProgram {
	if src == "" {
		c.add("expr", 0, 0, "the expr form needs expr: an expr-lang expression")
		return nil
	}
	p, err := compileExpr(src)
	if err != nil {
		ee := err.(*exprError)
		c.add("expr", ee.Line, ee.Column, "%s", ee.Msg)
		return nil
	}
	return p
}

func (c *compiler) mask(field string, s *MaskSpec) *mask {
	m := &mask{action: s.Action, first: s.KeepFirst, last: s.KeepLast}
	ok := true
	if s.Path == "" {
		c.add(field+".path", 0, 0, "missing path: the JSONPath of the values to mask, such as $.data.customer.phone")
		ok = false
	} else if m.path = c.path(field+".path", s.Path); m.path == nil {
		ok = false
	} else if len(m.path.steps) == 0 {
		c.add(field+".path", 0, 0, "a mask cannot cover the whole event ($); name the fields to mask")
		ok = false
	}
	switch s.Action {
	case "":
		c.add(field+".action", 0, 0, "missing action (use %s)", strings.Join(quoteAll(Actions), ", "))
		ok = false
	case ActionRedact, ActionRemove, ActionHash, ActionPartial:
	default:
		c.add(field+".action", 0, 0, "%q is not a mask action (use %s)", s.Action, strings.Join(quoteAll(Actions), ", "))
		ok = false
	}
	repl := DefaultReplacement
	if s.Replacement != nil {
		repl = *s.Replacement
		if s.Action != ActionRedact && s.Action != ActionPartial {
			c.add(field+".replacement", 0, 0, "replacement is for the redact action (and partial, for values with no characters to keep)")
			ok = false
		}
	}
	m.replacement = appendString(nil, repl)
	if s.Key != "" && s.Action != ActionHash {
		c.add(field+".key", 0, 0, "key is for the hash action only")
		ok = false
	}
	if s.Action == ActionHash {
		switch {
		case s.Key == "":
			c.add(field+".key", 0, 0, "the hash action needs key: a secret of at least %d bytes, from the environment (key: ${PII_HASH_KEY})", MinHashKeyBytes)
			ok = false
		case len(s.Key) < MinHashKeyBytes:
			c.add(field+".key", 0, 0, "the key is %d bytes; use at least %d so hashes cannot be guessed back", len(s.Key), MinHashKeyBytes)
			ok = false
		}
		m.key = []byte(s.Key)
	}
	if (s.KeepFirst != 0 || s.KeepLast != 0) && s.Action != ActionPartial {
		c.add(field, 0, 0, "keep_first and keep_last are for the partial action only")
		ok = false
	}
	for _, k := range []struct {
		name string
		n    int
	}{{"keep_first", s.KeepFirst}, {"keep_last", s.KeepLast}} {
		if k.n < 0 || k.n > 1000 {
			c.add(field+"."+k.name, 0, 0, "%d is out of range: use 0 to 1000", k.n)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return m
}

// Form returns the program's form.
func (p *Program) Form() string { return p.form }

// Apply reshapes one event, in structured CloudEvents JSON: masks first,
// then the form. Errors wrap ErrFailed.
func (p *Program) Apply(ev []byte, meta Meta) (body []byte, contentType string, err error) {
	body, contentType, err = p.apply(ev, meta)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrFailed, err)
	}
	if len(body) > p.limit {
		return nil, "", fmt.Errorf("%w: %w", ErrFailed, errTooLarge(p.limit))
	}
	return body, contentType, nil
}

func (p *Program) apply(ev []byte, meta Meta) ([]byte, string, error) {
	root := skipWS(ev, 0)
	if root >= len(ev) || ev[root] != '{' {
		return nil, "", errors.New("the event is not a JSON object")
	}
	for _, m := range p.masks {
		var err error
		if ev, err = m.apply(ev); err != nil {
			return nil, "", fmt.Errorf("mask %s: %w", m.path, err)
		}
	}
	switch p.form {
	case FormData:
		return data(ev)
	case FormPart:
		out, found, err := p.path.appendValue(nil, ev, 0)
		if err != nil {
			return nil, "", fmt.Errorf("path %s: %w", p.path, err)
		}
		if !found {
			out = []byte("null")
		}
		return out, ContentTypeJSON, nil
	case FormConstant:
		return bytes.Clone(p.constant), p.ctype, nil
	case FormTemplate:
		return p.template(ev, meta)
	case FormExpr:
		return p.runExpr(ev, meta)
	}
	return ev, ContentTypeCloudEvent, nil
}

// data returns the event's data: JSON as it is; a string whose
// datacontenttype is not JSON as its text, with that content type;
// data_base64 decoded; null when there is no data.
func data(ev []byte) ([]byte, string, error) {
	it := newLazyIterator(ev, skipWS(ev, 0))
	var m member
	var out []byte // data, compacted
	hasData := false
	b64, ct := -1, -1
	for it.next(&m) {
		switch {
		case m.keyIs(ev, "data"):
			if hasData {
				continue // the first of duplicate keys
			}
			var end int
			var err error
			if out, end, err = appendCompact(make([]byte, 0, len(ev)-m.valStart), ev, m.valStart); err != nil {
				return nil, "", fmt.Errorf("data: %w", err)
			}
			it.consumed(end)
			hasData = true
		case m.keyIs(ev, "data_base64") && b64 < 0:
			b64 = m.valStart
		case m.keyIs(ev, "datacontenttype") && ct < 0:
			ct = m.valStart
		}
	}
	if it.err != nil {
		return nil, "", it.err
	}
	ctype := ""
	if ct >= 0 && ev[ct] == '"' {
		end, err := checkString(ev, ct)
		if err != nil {
			return nil, "", err
		}
		ctype = decodeString(ev[ct:end])
	}
	switch {
	case hasData:
		if out[0] == '"' && ctype != "" && !isJSONType(ctype) {
			return unescape(make([]byte, 0, len(out)), out[1:len(out)-1]), ctype, nil
		}
		return out, ContentTypeJSON, nil
	case b64 >= 0:
		if ev[b64] != '"' {
			return nil, "", errors.New("data_base64 is not a string")
		}
		end, err := checkString(ev, b64)
		if err != nil {
			return nil, "", err
		}
		dec, err := base64.StdEncoding.DecodeString(decodeString(ev[b64:end]))
		if err != nil {
			return nil, "", fmt.Errorf("data_base64 is not base64: %v", err)
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		return dec, ctype, nil
	}
	return []byte("null"), ContentTypeJSON, nil
}

// isJSONType reports whether a media type is JSON: application/json,
// text/json or anything ending in +json.
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// tplState is the per-Apply scratch space of a template, pooled.
type tplState struct {
	starts  []int
	spans   [][2]int
	vals    [][]byte
	scratch []byte
}

var tplPool = sync.Pool{New: func() any { return &tplState{scratch: make([]byte, 0, 512)} }}

func (p *Program) template(ev []byte, meta Meta) ([]byte, string, error) {
	t := p.tpl
	st := tplPool.Get().(*tplState)
	defer func() {
		clear(st.vals) // drop references to the event
		if cap(st.scratch) <= 64<<10 {
			tplPool.Put(st)
		}
	}()
	n := len(t.vars)
	st.starts = slices.Grow(st.starts[:0], n)[:n]
	st.spans = slices.Grow(st.spans[:0], n)[:n]
	st.vals = slices.Grow(st.vals[:0], n)[:n]
	starts, spans, vals := st.starts, st.spans, st.vals
	if t.trie != nil {
		for i := range starts {
			starts[i] = -1
		}
		if _, err := t.trie.eval(ev, skipWS(ev, 0), 0, starts); err != nil {
			return nil, "", err
		}
	}
	// Each variable's JSON goes into scratch; vals slices it once it stopped
	// growing.
	scratch := st.scratch[:0]
	for i, v := range t.vars {
		start := len(scratch)
		var found bool
		var err error
		switch {
		case !t.inTrie[i]:
			scratch, found, err = resolve(scratch, ev, v, meta)
		case starts[i] >= 0:
			scratch, _, err = appendCompact(scratch, ev, starts[i])
			found = err == nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("<%s>: %w", v.name, err)
		}
		if !found {
			scratch = scratch[:start]
			spans[i] = [2]int{-1, -1}
			continue
		}
		spans[i] = [2]int{start, len(scratch)}
	}
	st.scratch = scratch
	for i, s := range spans {
		vals[i] = nil
		if s[0] >= 0 {
			vals[i] = scratch[s[0]:s[1]]
		}
	}
	out, err := t.render(make([]byte, 0, t.size+len(scratch)+16), vals, p.limit)
	if err != nil {
		return nil, "", err
	}
	if t.json {
		return out, ContentTypeJSON, nil
	}
	return out, ContentTypeText, nil
}

// resolve appends a variable's compact JSON to dst.
func resolve(dst, ev []byte, v variable, meta Meta) ([]byte, bool, error) {
	if v.path != nil {
		return v.path.appendValue(dst, ev, 0)
	}
	switch v.name {
	case VarRuleName:
		return appendString(dst, meta.Rule), true, nil
	case VarBus:
		return appendString(dst, meta.Bus), true, nil
	case VarEventJSON:
		out, _, err := appendCompact(dst, ev, 0)
		return out, err == nil, err
	case VarEvent:
		return appendWithout(dst, ev, "data", "data_base64")
	case VarIngestionTime:
		h, ok, err := (&Path{steps: []step{{kind: stepChild, name: IngestTimeAttr}}}).first(ev, 0)
		if err != nil || !ok {
			return dst, false, err
		}
		dst, _, err = appendCompact(dst, ev, h.start)
		return dst, err == nil, err
	}
	return dst, false, nil
}

// appendWithout appends the event object without the named members.
func appendWithout(dst, ev []byte, drop ...string) ([]byte, bool, error) {
	it := newIterator(ev, skipWS(ev, 0))
	var m member
	dst = append(dst, '{')
	n := 0
next:
	for it.next(&m) {
		for _, d := range drop {
			if m.keyIs(ev, d) {
				continue next
			}
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		var err error
		if dst, _, err = appendCompact(dst, ev, m.keyStart); err != nil {
			return dst, false, err
		}
		dst = append(dst, ':')
		if dst, _, err = appendCompact(dst, ev, m.valStart); err != nil {
			return dst, false, err
		}
	}
	if it.err != nil {
		return dst, false, it.err
	}
	return append(dst, '}'), true, nil
}

func (p *Program) runExpr(ev []byte, meta Meta) ([]byte, string, error) {
	out, err := p.expr.run(ev, meta)
	if err != nil {
		return nil, "", err
	}
	if s, ok := out.(string); ok {
		return []byte(s), ContentTypeText, nil
	}
	body, err := p.expr.encode(make([]byte, 0, 256), out)
	if err != nil {
		return nil, "", err
	}
	return body, ContentTypeJSON, nil
}
