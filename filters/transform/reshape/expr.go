package reshape

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/busbar/busbar/filters"
)

// Vars are the variables a transform expression sees: those of rule
// filters (see filters.FilterVars), plus the rule and the bus.
type Vars struct {
	SpecVersion     string         `expr:"specversion"`
	ID              string         `expr:"id"`
	Source          string         `expr:"source"`
	Type            string         `expr:"type"`
	Subject         string         `expr:"subject"`
	Time            time.Time      `expr:"time"` // zero when the event has no valid RFC 3339 time
	DataContentType string         `expr:"datacontenttype"`
	DataSchema      string         `expr:"dataschema"`
	Data            any            `expr:"data"`       // decoded JSON; integers are int, big or long numbers Number
	Extensions      map[string]any `expr:"extensions"` // every other top-level attribute, decoded
	Rule            string         `expr:"rule"`       // the rule's name
	Bus             string         `expr:"bus"`        // the bus's name
}

// exprError is an expression that does not compile; Line and Column count
// from 1 in the expression.
type exprError struct {
	Line, Column int
	Msg          string
}

func (e *exprError) Error() string { return e.Msg }

type exprProgram struct {
	prog *vm.Program
	// What the expression reads: the string attributes, time, data,
	// extensions.
	useAttributes, useTime, useData, useExtensions bool
	// data says which parts of data to decode: nil means all of it.
	data *dataNode
}

// dataNode is a tree of the member chains an expression reads from data
// (data.order.amount): only those are decoded.
type dataNode struct {
	whole    bool // the value is used as a whole: decode all of it
	children map[string]*dataNode
}

var exprOptions = append([]expr.Option{expr.Env(Vars{})}, filters.HelperFunctions()...)

func compileExpr(src string) (*exprProgram, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &exprError{Msg: "the expression is empty"}
	}
	prog, err := expr.Compile(src, exprOptions...)
	if err != nil {
		ee := &exprError{Msg: err.Error()}
		var fe *file.Error
		if errors.As(err, &fe) {
			ee.Msg, ee.Line, ee.Column = fe.Message, fe.Line, fe.Column+1
		}
		return nil, ee
	}
	uses := map[string]bool{}
	p := &exprProgram{prog: prog}
	p.data = analyse(prog.Node(), uses)
	p.useTime, p.useData, p.useExtensions = uses["time"], uses["data"], uses["extensions"]
	for _, a := range []string{"specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema"} {
		p.useAttributes = p.useAttributes || uses[a]
	}
	return p, nil
}

// analyse records which variables node reads and returns the parts of data
// it reads, or nil when it reads data in a way that needs all of it.
func analyse(node ast.Node, uses map[string]bool) *dataNode {
	v := &usage{uses: uses, inner: map[*ast.MemberNode]bool{}}
	ast.Walk(&node, v)
	if v.dataIdents == 0 {
		return &dataNode{children: map[string]*dataNode{}}
	}
	root := &dataNode{children: map[string]*dataNode{}}
	maximal := 0
	for _, m := range v.chains {
		if v.inner[m] {
			continue
		}
		maximal++
		names := chainNames(m)
		n := root
		for _, name := range names {
			if n.whole {
				break
			}
			c := n.children[name]
			if c == nil {
				c = &dataNode{children: map[string]*dataNode{}}
				n.children[name] = c
			}
			n = c
		}
		n.whole, n.children = true, nil
	}
	if maximal != v.dataIdents {
		return nil // data is also used whole, or indexed by a variable
	}
	return root
}

type usage struct {
	uses       map[string]bool
	dataIdents int
	chains     []*ast.MemberNode        // data.a.b… chains with constant names
	inner      map[*ast.MemberNode]bool // chains that are part of a longer one
}

func (u *usage) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		u.uses[x.Value] = true
		if x.Value == "data" {
			u.dataIdents++
		}
	case *ast.MemberNode:
		if chainNames(x) != nil {
			u.chains = append(u.chains, x)
			if inner, ok := x.Node.(*ast.MemberNode); ok {
				u.inner[inner] = true
			}
		}
	}
}

// chainNames returns ["a", "b"] for data.a.b (or data["a"]?.b), or nil when
// m is not such a chain.
func chainNames(m *ast.MemberNode) []string {
	var rev []string
	var n ast.Node = m
	for {
		switch x := n.(type) {
		case *ast.MemberNode:
			s, ok := x.Property.(*ast.StringNode)
			if !ok || x.Method {
				return nil
			}
			rev = append(rev, s.Value)
			n = x.Node
		case *ast.ChainNode:
			n = x.Node
		case *ast.IdentifierNode:
			if x.Value != "data" {
				return nil
			}
			out := make([]string, len(rev))
			for i, s := range rev {
				out[len(rev)-1-i] = s
			}
			return out
		default:
			return nil
		}
	}
}

var vmPool = sync.Pool{New: func() any { return new(vm.VM) }}

// run evaluates the expression for the event ev.
func (p *exprProgram) run(ev []byte, meta Meta) (any, error) {
	vars := Vars{Rule: meta.Rule, Bus: meta.Bus}
	if err := p.fill(&vars, ev); err != nil {
		return nil, err
	}
	m := vmPool.Get().(*vm.VM)
	out, err := m.Run(p.prog, &vars)
	vmPool.Put(m)
	if err != nil {
		return nil, fmt.Errorf("the expression failed: %v", err)
	}
	return out, nil
}

// fill decodes what the expression reads of the event.
func (p *exprProgram) fill(v *Vars, ev []byte) error {
	root := skipWS(ev, 0)
	if root >= len(ev) || ev[root] != '{' {
		return errSyntax
	}
	it := newIterator(ev, root)
	var m member
	for it.next(&m) {
		raw := ev[m.keyStart+1 : m.keyEnd-1]
		if m.escaped {
			raw = unescape(nil, raw)
		}
		var str *string
		switch string(raw) {
		case "specversion":
			str = &v.SpecVersion
		case "id":
			str = &v.ID
		case "source":
			str = &v.Source
		case "type":
			str = &v.Type
		case "subject":
			str = &v.Subject
		case "datacontenttype":
			str = &v.DataContentType
		case "dataschema":
			str = &v.DataSchema
		case "time":
			if p.useTime && ev[m.valStart] == '"' {
				if _, err := checkString(ev, m.valStart); err != nil {
					return err
				}
				if t, err := time.Parse(time.RFC3339Nano, decodeString(ev[m.valStart:m.valEnd])); err == nil {
					v.Time = t
				}
			}
			continue
		case "data":
			if !p.useData {
				continue
			}
			d, err := decodePart(ev, m.valStart, p.data)
			if err != nil {
				return err
			}
			v.Data = d
			continue
		default:
			if !p.useExtensions {
				continue
			}
			x, _, err := decodeValue(ev, m.valStart, 0)
			if err != nil {
				return err
			}
			if v.Extensions == nil {
				v.Extensions = map[string]any{}
			}
			v.Extensions[string(raw)] = x
			continue
		}
		if p.useAttributes && ev[m.valStart] == '"' {
			if _, err := checkString(ev, m.valStart); err != nil {
				return err
			}
			*str = decodeString(ev[m.valStart:m.valEnd])
		}
	}
	return it.err
}

// decodePart decodes the value at ev[i:], but of an object only the members
// n names (n nil: all of it).
func decodePart(ev []byte, i int, n *dataNode) (any, error) {
	if n == nil || n.whole || ev[i] != '{' {
		v, _, err := decodeValue(ev, i, 0)
		return v, err
	}
	out := make(map[string]any, len(n.children))
	it := newIterator(ev, i)
	var m member
	for it.next(&m) {
		raw := ev[m.keyStart+1 : m.keyEnd-1]
		if m.escaped {
			raw = unescape(nil, raw)
		}
		c, ok := n.children[string(raw)]
		if !ok {
			continue
		}
		v, err := decodePart(ev, m.valStart, c)
		if err != nil {
			return nil, err
		}
		out[string(raw)] = v
	}
	return out, it.err
}
