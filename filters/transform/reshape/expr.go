package reshape

import (
	"errors"
	"fmt"
	"slices"
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

	// Member chains of data (data.customer.name) are compiled into these:
	// their values are decoded straight from the event, without building
	// the maps around them. Not for expressions to use.
	D0  any `expr:"__data0"`
	D1  any `expr:"__data1"`
	D2  any `expr:"__data2"`
	D3  any `expr:"__data3"`
	D4  any `expr:"__data4"`
	D5  any `expr:"__data5"`
	D6  any `expr:"__data6"`
	D7  any `expr:"__data7"`
	D8  any `expr:"__data8"`
	D9  any `expr:"__data9"`
	D10 any `expr:"__data10"`
	D11 any `expr:"__data11"`
	D12 any `expr:"__data12"`
	D13 any `expr:"__data13"`
	D14 any `expr:"__data14"`
	D15 any `expr:"__data15"`
}

// maxChains is how many distinct member chains of data can be compiled
// into Vars' hidden fields.
const maxChains = 16

func (v *Vars) setChain(i int, x any) {
	switch i {
	case 0:
		v.D0 = x
	case 1:
		v.D1 = x
	case 2:
		v.D2 = x
	case 3:
		v.D3 = x
	case 4:
		v.D4 = x
	case 5:
		v.D5 = x
	case 6:
		v.D6 = x
	case 7:
		v.D7 = x
	case 8:
		v.D8 = x
	case 9:
		v.D9 = x
	case 10:
		v.D10 = x
	case 11:
		v.D11 = x
	case 12:
		v.D12 = x
	case 13:
		v.D13 = x
	case 14:
		v.D14 = x
	case 15:
		v.D15 = x
	}
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
	// attrs names the attributes read; fill stops once it has them all
	// (unless extensions are read, which takes every member).
	attrs map[string]bool
	// data says which parts of data to decode: nil means all of it.
	data *dataNode
	// chains, when set, replaced every use of data: chain i's value is
	// read at the trie's variable i and goes to Vars' hidden field i.
	chains *trieNode
	nChain int
}

// dataNode is a tree of the member chains an expression reads from data
// (data.order.amount): only those are decoded.
type dataNode struct {
	whole    bool   // the value is used as a whole: decode all of it
	name     string // its key, reused for the decoded map (no allocation)
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
	var chains [][]string
	p.data, chains = analyse(prog.Node(), uses)
	if p.data != nil && len(chains) > 0 && len(chains) <= maxChains {
		if patched, err := compileChains(src, chains); err == nil {
			p.prog = patched
			p.chains, p.nChain = &trieNode{}, len(chains)
			for i, c := range chains {
				steps := make([]step, len(c))
				for k, name := range c {
					steps[k] = step{kind: stepChild, name: name}
				}
				p.chains.add(&Path{steps: steps}, i)
			}
		}
	}
	p.useTime, p.useData, p.useExtensions = uses["time"], uses["data"], uses["extensions"]
	p.attrs = map[string]bool{}
	for _, a := range []string{"specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time", "data"} {
		if uses[a] {
			p.attrs[a] = true
		}
	}
	for _, a := range []string{"specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema"} {
		p.useAttributes = p.useAttributes || uses[a]
	}
	return p, nil
}

// analyse records which variables node reads and returns the parts of data
// it reads, or nil when it reads data in a way that needs all of it.
// It also returns the member chains of data that are read whole (the
// leaves of that tree), each once.
func analyse(node ast.Node, uses map[string]bool) (*dataNode, [][]string) {
	v := &usage{uses: uses, inner: map[*ast.MemberNode]bool{}}
	ast.Walk(&node, v)
	if v.dataIdents == 0 {
		return &dataNode{children: map[string]*dataNode{}}, nil
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
				c = &dataNode{name: name, children: map[string]*dataNode{}}
				n.children[name] = c
			}
			n = c
		}
		n.whole, n.children = true, nil
	}
	if maximal != v.dataIdents {
		return nil, nil // data is also used whole, or indexed by a variable
	}
	var chains [][]string
	var leaves func(n *dataNode, prefix []string)
	leaves = func(n *dataNode, prefix []string) {
		if n.whole {
			chains = append(chains, slices.Clone(prefix))
			return
		}
		names := make([]string, 0, len(n.children))
		for name := range n.children {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			leaves(n.children[name], append(prefix, name))
		}
	}
	leaves(root, nil)
	return root, chains
}

// compileChains compiles src again with each member chain of data that
// reads a leaf of chains replaced by the hidden variable holding it.
func compileChains(src string, chains [][]string) (*vm.Program, error) {
	index := map[string]int{}
	for i, c := range chains {
		index[strings.Join(c, "\x00")] = i
	}
	opts := append(slices.Clip(exprOptions), expr.Patch(&chainPatcher{index: index}))
	return expr.Compile(src, opts...)
}

type chainPatcher struct{ index map[string]int }

func (p *chainPatcher) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok {
		return
	}
	names := chainNames(m)
	if names == nil {
		return
	}
	if i, ok := p.index[strings.Join(names, "\x00")]; ok {
		ast.Patch(n, &ast.IdentifierNode{Value: fmt.Sprintf("__data%d", i)})
	}
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

type runState struct {
	vm   vm.VM
	vars Vars
}

var statePool = sync.Pool{New: func() any { return new(runState) }}

// run evaluates the expression for the event ev.
func (p *exprProgram) run(ev []byte, meta Meta) (any, error) {
	st := statePool.Get().(*runState)
	defer func() {
		st.vars = Vars{} // drop the event's values
		statePool.Put(st)
	}()
	st.vars = Vars{Rule: meta.Rule, Bus: meta.Bus}
	if err := p.fill(&st.vars, ev); err != nil {
		return nil, err
	}
	out, err := st.vm.Run(p.prog, &st.vars)
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
	it := newLazyIterator(ev, root)
	var m member
	need := len(p.attrs) // members still to read; extensions need them all
	for (need > 0 || p.useExtensions) && it.next(&m) {
		raw := ev[m.keyStart+1 : m.keyEnd-1]
		if m.escaped {
			raw = unescape(nil, raw)
		}
		if p.attrs[string(raw)] {
			need--
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
				end, err := checkString(ev, m.valStart)
				if err != nil {
					return err
				}
				it.consumed(end)
				if t, err := time.Parse(time.RFC3339Nano, decodeString(ev[m.valStart:end])); err == nil {
					v.Time = t
				}
			}
			continue
		case "data":
			if !p.useData {
				continue
			}
			if p.chains != nil {
				var buf [maxChains]int
				starts := buf[:p.nChain]
				for i := range starts {
					starts[i] = -1
				}
				end, err := p.chains.eval(ev, m.valStart, 0, starts)
				if err != nil {
					return err
				}
				if end >= 0 {
					it.consumed(end)
				}
				for i, at := range starts {
					if at < 0 {
						continue
					}
					x, _, err := decodeValue(ev, at, 0)
					if err != nil {
						return err
					}
					v.setChain(i, x)
				}
				continue
			}
			d, end, err := decodePart(ev, m.valStart, p.data, 0)
			if err != nil {
				return err
			}
			if end >= 0 {
				it.consumed(end)
			}
			v.Data = d
			continue
		default:
			if !p.useExtensions {
				continue
			}
			x, end, err := decodeValue(ev, m.valStart, 0)
			if err != nil {
				return err
			}
			it.consumed(end)
			if v.Extensions == nil {
				v.Extensions = map[string]any{}
			}
			v.Extensions[string(raw)] = x
			continue
		}
		if p.useAttributes && ev[m.valStart] == '"' {
			end, err := checkString(ev, m.valStart)
			if err != nil {
				return err
			}
			it.consumed(end)
			*str = decodeString(ev[m.valStart:end])
		}
	}
	return it.err
}

// decodePart decodes the value at ev[i:], but of an object only the members
// n names (n nil: all of it). It returns the end of the value, or -1 when
// it stopped early, having all it wanted.
func decodePart(ev []byte, i int, n *dataNode, depth int) (any, int, error) {
	if n == nil || n.whole || ev[i] != '{' {
		return decodeValue(ev, i, depth)
	}
	if depth > maxDepth {
		return nil, 0, errDepth
	}
	out := make(map[string]any, len(n.children))
	it := newLazyIterator(ev, i)
	var m member
	for len(out) < len(n.children) && it.next(&m) {
		raw := ev[m.keyStart+1 : m.keyEnd-1]
		if m.escaped {
			raw = unescape(nil, raw)
		}
		c, ok := n.children[string(raw)]
		if !ok {
			continue
		}
		if _, dup := out[c.name]; dup {
			continue // the first of duplicate keys, as paths read them
		}
		v, end, err := decodePart(ev, m.valStart, c, depth+1)
		if err != nil {
			return nil, 0, err
		}
		if end >= 0 {
			it.consumed(end)
		}
		out[c.name] = v
	}
	if it.err != nil {
		return nil, 0, it.err
	}
	if len(out) == len(n.children) {
		return out, -1, nil
	}
	return out, it.i, nil
}
