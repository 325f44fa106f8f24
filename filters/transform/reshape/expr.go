package reshape

import (
	"errors"
	"fmt"
	"math/bits"
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
	// attrs are the attributes the expression reads (data and time
	// included); fill stops once it has them all, unless extensions are
	// read, which takes every member.
	attrs         attrSet
	useExtensions bool
	// data says which parts of data to decode: nil means all of it.
	data *dataNode
	// chains, when set, replaced every use of data: chain i's value is
	// read at the trie's variable i and goes to Vars' hidden field i.
	chains *trieNode
	nChain int
	// fields, when set, are the keys of the map literal the expression
	// is: it was compiled into the list of its values, in the order
	// written, so that no map is built; fields say, sorted by key, where
	// each value is in the list.
	fields []field
}

// field is a member of a map literal at the root of an expression.
type field struct {
	key   []byte // the key, as JSON, and a colon
	value int    // its value's index in the list the program returns
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
		if patched, err := recompile(src, chainPatcher(chains)); err == nil {
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
	if fields, lp := literalFields(prog.Node()); fields != nil {
		patchers := []ast.Visitor{lp}
		if p.chains != nil {
			patchers = append(patchers, chainPatcher(chains))
		}
		if patched, err := recompile(src, patchers...); err == nil {
			if _, ok := patched.Node().(*ast.ArrayNode); ok {
				p.prog, p.fields = patched, fields
			}
		}
	}
	p.useExtensions = uses["extensions"]
	for name, a := range attrNames {
		if uses[name] {
			p.attrs |= a
		}
	}
	return p, nil
}

// attrSet is a set of the top-level attributes Vars has a field for.
type attrSet uint16

const (
	attrSpecVersion attrSet = 1 << iota
	attrID
	attrSource
	attrType
	attrSubject
	attrDataContentType
	attrDataSchema
	attrTime
	attrData
)

var attrNames = map[string]attrSet{
	"specversion": attrSpecVersion, "id": attrID, "source": attrSource, "type": attrType,
	"subject": attrSubject, "datacontenttype": attrDataContentType, "dataschema": attrDataSchema,
	"time": attrTime, "data": attrData,
}

// attrOf returns the attribute named key, 0 for any other member.
func attrOf(key []byte) attrSet {
	switch string(key) {
	case "specversion":
		return attrSpecVersion
	case "id":
		return attrID
	case "source":
		return attrSource
	case "type":
		return attrType
	case "subject":
		return attrSubject
	case "datacontenttype":
		return attrDataContentType
	case "dataschema":
		return attrDataSchema
	case "time":
		return attrTime
	case "data":
		return attrData
	}
	return 0
}

// str returns the field of v holding the string attribute a, nil for
// others.
func (v *Vars) str(a attrSet) *string {
	switch a {
	case attrSpecVersion:
		return &v.SpecVersion
	case attrID:
		return &v.ID
	case attrSource:
		return &v.Source
	case attrType:
		return &v.Type
	case attrSubject:
		return &v.Subject
	case attrDataContentType:
		return &v.DataContentType
	case attrDataSchema:
		return &v.DataSchema
	}
	return nil
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

// recompile compiles src again with patchers applied.
func recompile(src string, patchers ...ast.Visitor) (*vm.Program, error) {
	opts := slices.Clip(exprOptions)
	for _, v := range patchers {
		opts = append(opts, expr.Patch(v))
	}
	return expr.Compile(src, opts...)
}

// chainPatcher replaces each member chain of data that reads a leaf of
// chains by the hidden variable holding it.
func chainPatcher(chains [][]string) *chainPatch {
	index := map[string]int{}
	for i, c := range chains {
		index[strings.Join(c, "\x00")] = i
	}
	return &chainPatch{index: index}
}

type chainPatch struct{ index map[string]int }

func (p *chainPatch) Visit(n *ast.Node) {
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

// literalFields returns, when root is a map literal with constant,
// distinct keys, its fields sorted by key and the patcher that turns it into
// the list of its values.
func literalFields(root ast.Node) ([]field, ast.Visitor) {
	m, ok := root.(*ast.MapNode)
	if !ok {
		return nil, nil
	}
	keys := make([]string, len(m.Pairs))
	index := map[string]int{}
	for i, n := range m.Pairs {
		pair, ok := n.(*ast.PairNode)
		if !ok {
			return nil, nil
		}
		k, ok := pair.Key.(*ast.StringNode)
		if !ok {
			return nil, nil
		}
		if _, dup := index[k.Value]; dup {
			return nil, nil
		}
		keys[i], index[k.Value] = k.Value, i
	}
	slices.Sort(keys)
	fields := make([]field, len(keys))
	for i, k := range keys {
		fields[i] = field{key: append(appendString(nil, k), ':'), value: index[k]}
	}
	return fields, &literalPatch{at: m.Location()}
}

// literalPatch replaces the map literal at the root (the one spanning at)
// by the list of its values.
type literalPatch struct{ at file.Location }

func (p *literalPatch) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MapNode)
	if !ok || m.Location() != p.at {
		return
	}
	values := make([]ast.Node, len(m.Pairs))
	for i, pair := range m.Pairs {
		values[i] = pair.(*ast.PairNode).Value
	}
	ast.Patch(n, &ast.ArrayNode{Nodes: values})
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

// encode appends the JSON of out, what the program returned.
func (p *exprProgram) encode(dst []byte, out any) ([]byte, error) {
	list, ok := out.([]any)
	if p.fields == nil || !ok || len(list) != len(p.fields) {
		return appendAny(dst, out, 0)
	}
	dst = append(dst, '{')
	for i, f := range p.fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.key...)
		var err error
		if dst, err = appendAny(dst, list[f.value], 1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// fill decodes what the expression reads of the event.
func (p *exprProgram) fill(v *Vars, ev []byte) error {
	root := skipWS(ev, 0)
	if root >= len(ev) || ev[root] != '{' {
		return errSyntax
	}
	it := newLazyIterator(ev, root)
	var m member
	need := bits.OnesCount16(uint16(p.attrs)) // members still to read
	for (need > 0 || p.useExtensions) && it.next(&m) {
		raw := ev[m.keyStart+1 : m.keyEnd-1]
		if m.escaped {
			raw = unescape(nil, raw)
		}
		a := attrOf(raw)
		if p.attrs&a == 0 {
			if a != 0 || !p.useExtensions {
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
		need--
		switch a {
		case attrTime:
			if ev[m.valStart] == '"' {
				end, err := checkString(ev, m.valStart)
				if err != nil {
					return err
				}
				it.consumed(end)
				if t, err := time.Parse(time.RFC3339Nano, decodeString(ev[m.valStart:end])); err == nil {
					v.Time = t
				}
			}
		case attrData:
			if err := p.fillData(v, ev, &it, m.valStart); err != nil {
				return err
			}
		default:
			if ev[m.valStart] == '"' {
				end, err := checkString(ev, m.valStart)
				if err != nil {
					return err
				}
				it.consumed(end)
				*v.str(a) = decodeString(ev[m.valStart:end])
			}
		}
	}
	return it.err
}

// fillData decodes what the expression reads of data, the value at ev[i].
func (p *exprProgram) fillData(v *Vars, ev []byte, it *iterator, i int) error {
	if p.chains == nil {
		d, end, err := decodePart(ev, i, p.data, 0)
		if err != nil {
			return err
		}
		if end >= 0 {
			it.consumed(end)
		}
		v.Data = d
		return nil
	}
	var buf [maxChains]int
	starts := buf[:p.nChain]
	for k := range starts {
		starts[k] = -1
	}
	end, err := p.chains.eval(ev, i, 0, starts)
	if err != nil {
		return err
	}
	if end >= 0 {
		it.consumed(end)
	}
	for k, at := range starts {
		if at < 0 {
			continue
		}
		x, _, err := decodeValue(ev, at, 0)
		if err != nil {
			return err
		}
		v.setChain(k, x)
	}
	return nil
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
