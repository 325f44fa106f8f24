package filters

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

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
	parsed     bool
	dataParsed bool
	rawData    []byte
	vm         vm.VM
}

func (fe *filterEnv) reset() {
	fe.vars = FilterVars{}
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
		decodeEnvelope(&env.vars, &env.rawData, event)
	}
	if fp.needData && !env.dataParsed {
		env.dataParsed = true
		if env.rawData != nil {
			var d any
			if json.Unmarshal(env.rawData, &d) == nil {
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
func decodeEnvelope(v *FilterVars, rawData *[]byte, b []byte) {
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
		key := string(b[i+1 : end-1])
		if esc {
			key = string(unescape(nil, b[i+1:end-1]))
		}
		i = skipWS(b, end) + 1 // ':'
		i = skipWS(b, i)
		vend, err := skipValue(b, i, 0)
		if err != nil {
			return
		}
		raw := b[i:vend]
		str := func() string {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return ""
			}
			return s
		}
		switch key {
		case "specversion":
			v.SpecVersion = str()
		case "id":
			v.ID = str()
		case "source":
			v.Source = str()
		case "type":
			v.Type = str()
		case "subject":
			v.Subject = str()
		case "datacontenttype":
			v.DataContentType = str()
		case "dataschema":
			v.DataSchema = str()
		case "time":
			if t, err := time.Parse(time.RFC3339Nano, str()); err == nil {
				v.Time = t
			}
		case "data":
			*rawData = raw
		default:
			var x any
			if json.Unmarshal(raw, &x) == nil {
				if v.Extensions == nil {
					v.Extensions = map[string]any{}
				}
				v.Extensions[key] = x
			}
		}
		i = skipWS(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
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
