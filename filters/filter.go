package filters

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// This file compiles and runs the expr-lang filters of rules. A filter runs
// only for events whose pattern already matched, and the event is decoded
// for it at most once per Match: the envelope attributes always, data only
// when some filter that has to run mentions data.

// FilterVars are the variables a filter expression sees.
type FilterVars struct {
	SpecVersion     string         `expr:"specversion"`
	ID              string         `expr:"id"`
	Source          string         `expr:"source"`
	Type            string         `expr:"type"`
	Subject         string         `expr:"subject"`
	Time            time.Time      `expr:"time"` // zero when the event has no valid RFC 3339 time
	DataContentType string         `expr:"datacontenttype"`
	DataSchema      string         `expr:"dataschema"`
	Data            any            `expr:"data"`       // decoded JSON: map[string]any, []any, string, float64, bool or nil
	Extensions      map[string]any `expr:"extensions"` // every other top-level attribute, decoded
}

// FilterError describes a filter expression that does not compile or does
// not return a bool. Line and Column (both from 1) point into the expression.
type FilterError struct {
	Rule    string
	Line    int
	Column  int
	Msg     string
	Snippet string // the offending line with a caret under the column
}

func (e *FilterError) Error() string {
	s := ""
	if e.Rule != "" {
		s = "rule " + quote(e.Rule) + ": "
	}
	s += "filter"
	if e.Line > 0 {
		s += fmt.Sprintf(" at line %d, column %d", e.Line, e.Column)
	}
	return s + ": " + e.Msg + e.Snippet
}

// ValidateFilter compiles and type-checks one filter expression and reports
// the first problem as a *FilterError.
func ValidateFilter(expression string) error {
	_, err := compileFilter(expression)
	return err
}

type filterProgram struct {
	prog     *vm.Program
	needData bool
}

// HelperFunctions returns the functions filter expressions may call besides
// expr-lang's builtins: jsonpath(value, path) and cidr(ip, block). Transform
// expressions get the same ones.
func HelperFunctions() []expr.Option {
	return []expr.Option{
		expr.Function("jsonpath", func(p ...any) (any, error) {
			return JSONPath(p[0], p[1].(string))
		}, new(func(any, string) any)),
		expr.Function("cidr", func(p ...any) (any, error) {
			return cidrContains(p[0].(string), p[1].(string)), nil
		}, new(func(string, string) bool)),
	}
}

var filterOptions = append([]expr.Option{expr.Env(FilterVars{}), expr.AsBool()}, HelperFunctions()...)

func compileFilter(src string) (*filterProgram, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &FilterError{Msg: "the filter is empty; remove it or write an expression returning bool"}
	}
	prog, err := expr.Compile(src, filterOptions...)
	if err != nil {
		fe := &FilterError{Msg: err.Error()}
		var xe *file.Error
		if errors.As(err, &xe) {
			fe.Msg, fe.Line, fe.Column, fe.Snippet = xe.Message, xe.Line, xe.Column+1, xe.Snippet
		}
		return nil, fe
	}
	v := &identVisitor{}
	node := prog.Node()
	ast.Walk(&node, v)
	return &filterProgram{prog: prog, needData: v.data}, nil
}

type identVisitor struct{ data bool }

func (v *identVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && id.Value == "data" {
		v.data = true
	}
}

// filterEnv is the per-Match decoded event, shared by the filters of all
// matched rules.
type filterEnv struct {
	vars       FilterVars
	ext        map[string]any // reused across events
	parsed     bool
	dataParsed bool
	rawData    []byte
	vm         vm.VM
}

func (fe *filterEnv) reset() {
	fe.vars = FilterVars{}
	clear(fe.ext)
	fe.parsed, fe.dataParsed, fe.rawData = false, false, nil
}

// eval runs the filter; a runtime error (say, comparing a missing field
// with a number) counts as false.
func (fp *filterProgram) eval(sc *scratch, event []byte) bool {
	if sc.env == nil {
		sc.env = &filterEnv{}
	}
	env := sc.env
	if !env.parsed {
		env.parsed = true
		if env.ext == nil {
			env.ext = make(map[string]any, 8)
		}
		decodeEnvelope(&env.vars, &env.rawData, env.ext, event)
	}
	if fp.needData && !env.dataParsed {
		env.dataParsed = true
		if env.rawData != nil {
			if d, _, err := decodeAny(env.rawData, 0, 0); err == nil {
				env.vars.Data = d
			}
		}
	}
	out, err := env.vm.Run(fp.prog, &env.vars)
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}

// decodeEnvelope fills the attributes of a structured-mode CloudEvent,
// keeping data raw. The event was already validated by the flattener.
// Strings without escapes point into the event (no copy): the variables
// live only while Match runs the filters, and are cleared after.
func decodeEnvelope(v *FilterVars, rawData *[]byte, ext map[string]any, b []byte) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return
	}
	i = skipWS(b, i+1)
	for i < len(b) && b[i] == '"' {
		end, esc, err := scanString(b, i)
		if err != nil {
			return
		}
		key := b[i+1 : end-1]
		if esc {
			key = unescape(nil, key)
		}
		i = skipWS(b, end) + 1 // ':'
		i = skipWS(b, i)
		vend, err := skipValue(b, i, 0)
		if err != nil {
			return
		}
		raw := b[i:vend]
		switch string(key) {
		case "specversion":
			v.SpecVersion = jsonStr(raw)
		case "id":
			v.ID = jsonStr(raw)
		case "source":
			v.Source = jsonStr(raw)
		case "type":
			v.Type = jsonStr(raw)
		case "subject":
			v.Subject = jsonStr(raw)
		case "datacontenttype":
			v.DataContentType = jsonStr(raw)
		case "dataschema":
			v.DataSchema = jsonStr(raw)
		case "time":
			if t, err := time.Parse(time.RFC3339Nano, jsonStr(raw)); err == nil {
				v.Time = t
			}
		case "data":
			*rawData = raw
		default:
			var x any
			if raw[0] == '"' {
				x = jsonStr(raw)
			} else if json.Unmarshal(raw, &x) != nil {
				x = nil
			}
			ext[string(key)] = x
		}
		i = skipWS(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	v.Extensions = ext
}

// jsonStr returns the value of a JSON string literal, "" for other values.
// Without escapes it shares the bytes of raw.
func jsonStr(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	body := raw[1 : len(raw)-1]
	if len(body) == 0 {
		return ""
	}
	if bytes.IndexByte(body, '\\') >= 0 {
		return string(unescape(nil, body))
	}
	return unsafe.String(&body[0], len(body))
}

// decodeAny decodes one JSON value into the types encoding/json uses for
// any (map[string]any, []any, float64, string, bool, nil). Strings without
// escapes share the input's bytes, so the result must not outlive it.
func decodeAny(b []byte, i, depth int) (any, int, error) {
	i = skipWS(b, i)
	if i >= len(b) {
		return nil, 0, synErr(i, "unexpected end of input")
	}
	if depth >= maxJSONDepth {
		return nil, 0, synErr(i, "nested too deeply")
	}
	switch c := b[i]; c {
	case '{':
		m := map[string]any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return m, i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return nil, 0, synErr(i, "expected object key")
			}
			end, _, err := scanString(b, i)
			if err != nil {
				return nil, 0, err
			}
			key := jsonStr(b[i:end])
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return nil, 0, synErr(i, "expected ':'")
			}
			var v any
			if v, i, err = decodeAny(b, i+1, depth+1); err != nil {
				return nil, 0, err
			}
			m[key] = v
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return m, i + 1, nil
			}
			return nil, 0, synErr(i, "expected ',' or '}'")
		}
	case '[':
		a := []any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return a, i + 1, nil
		}
		for {
			v, next, err := decodeAny(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			a = append(a, v)
			i = skipWS(b, next)
			if i < len(b) && b[i] == ',' {
				i++
				continue
			}
			if i < len(b) && b[i] == ']' {
				return a, i + 1, nil
			}
			return nil, 0, synErr(i, "expected ',' or ']'")
		}
	case '"':
		end, _, err := scanString(b, i)
		if err != nil {
			return nil, 0, err
		}
		return jsonStr(b[i:end]), end, nil
	case 't':
		end, err := scanLiteral(b, i, "true")
		return true, end, err
	case 'f':
		end, err := scanLiteral(b, i, "false")
		return false, end, err
	case 'n':
		end, err := scanLiteral(b, i, "null")
		return nil, end, err
	}
	end, err := scanNumber(b, i)
	if err != nil {
		return nil, 0, err
	}
	f, ok := parseJSONNumber(b[i:end])
	if !ok {
		return nil, 0, synErr(i, "number outside the float64 range")
	}
	return f, end, nil
}

func cidrContains(ip, block string) bool {
	p, err := netip.ParsePrefix(block)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return p.Masked().Contains(a.Unmap())
}

// JSONPath evaluates a small JSONPath subset on decoded JSON: "$" then any
// sequence of ".name", "['name']" or "[\"name\"]", "[n]" (negative counts
// from the end), ".*" and "[*]". Without wildcards it returns the value or
// nil when absent; with wildcards it returns a []any of every value found.
func JSONPath(v any, path string) (any, error) {
	steps, wild, err := parseJSONPath(path)
	if err != nil {
		return nil, err
	}
	cur := []any{v}
	for _, s := range steps {
		var next []any
		for _, c := range cur {
			switch {
			case s.all:
				switch x := c.(type) {
				case map[string]any:
					for _, k := range sortedKeys(x) {
						next = append(next, x[k])
					}
				case []any:
					next = append(next, x...)
				}
			case s.isIndex:
				if a, ok := c.([]any); ok {
					i := s.index
					if i < 0 {
						i += len(a)
					}
					if i >= 0 && i < len(a) {
						next = append(next, a[i])
					}
				}
			default:
				if m, ok := c.(map[string]any); ok {
					if x, ok := m[s.name]; ok {
						next = append(next, x)
					}
				}
			}
		}
		cur = next
	}
	if wild {
		if cur == nil {
			cur = []any{}
		}
		return cur, nil
	}
	if len(cur) == 0 {
		return nil, nil
	}
	return cur[0], nil
}

type jpStep struct {
	name    string
	index   int
	isIndex bool
	all     bool
}

func parseJSONPath(p string) ([]jpStep, bool, error) {
	bad := func(i int, msg string) ([]jpStep, bool, error) {
		return nil, false, fmt.Errorf("jsonpath %q at %d: %s", p, i, msg)
	}
	if !strings.HasPrefix(p, "$") {
		return bad(0, `must start with "$"`)
	}
	var steps []jpStep
	wild := false
	for i := 1; i < len(p); {
		switch p[i] {
		case '.':
			i++
			if i < len(p) && p[i] == '*' {
				steps, wild = append(steps, jpStep{all: true}), true
				i++
				continue
			}
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' {
				j++
			}
			if j == i {
				return bad(i, "empty field name")
			}
			steps = append(steps, jpStep{name: p[i:j]})
			i = j
		case '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return bad(i, `missing "]"`)
			}
			in := p[i+1 : i+j]
			switch {
			case in == "*":
				steps, wild = append(steps, jpStep{all: true}), true
			case len(in) >= 2 && (in[0] == '\'' && in[len(in)-1] == '\'' || in[0] == '"' && in[len(in)-1] == '"'):
				steps = append(steps, jpStep{name: in[1 : len(in)-1]})
			default:
				n, err := strconv.Atoi(in)
				if err != nil {
					return bad(i, "expected an index, '*' or a quoted name")
				}
				steps = append(steps, jpStep{index: n, isIndex: true})
			}
			i += j + 1
		default:
			return bad(i, `expected "." or "["`)
		}
	}
	return steps, wild, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
