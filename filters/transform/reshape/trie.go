package reshape

// A template's simple paths ($.a.b[2].c: names and non-negative indexes)
// are read in one pass over the event: a trie of their steps is walked
// once, each object scanned only as far as its last wanted member. Paths
// with wildcards, .. or negative indexes are read one by one.

type trieNode struct {
	vars    []int // template variables whose path ends here
	names   map[string]*trieNode
	list    []named // names again: a short list is searched faster than a map
	indexes map[int]*trieNode
	maxIdx  int
	id      int // among its parent's children, to see duplicate keys
	kids    int
}

// simple reports whether p can go in a trie.
func (p *Path) simple() bool {
	for _, s := range p.steps {
		if s.kind == stepWild || s.kind == stepDescent || s.kind == stepIndex && s.index < 0 {
			return false
		}
	}
	return true
}

func (n *trieNode) add(p *Path, v int) {
	for _, s := range p.steps {
		var next *trieNode
		if s.kind == stepChild {
			if n.names == nil {
				n.names = map[string]*trieNode{}
			}
			if next = n.names[s.name]; next == nil {
				next = &trieNode{id: n.kids}
				n.kids++
				n.names[s.name] = next
				n.list = append(n.list, named{s.name, next})
			}
		} else {
			if n.indexes == nil {
				n.indexes = map[int]*trieNode{}
			}
			if next = n.indexes[s.index]; next == nil {
				next = &trieNode{id: n.kids}
				n.kids++
				n.indexes[s.index] = next
			}
			n.maxIdx = max(n.maxIdx, s.index)
		}
		n = next
	}
	n.vars = append(n.vars, v)
}

// eval records in starts where each variable's value begins in b (the value
// at b[i]); starts of values not found stay -1. It returns the end of the
// value when it read all of it, else -1.
func (n *trieNode) eval(b []byte, i, depth int, starts []int) (int, error) {
	for _, v := range n.vars {
		starts[v] = i
	}
	if depth > maxDepth {
		return -1, errDepth
	}
	if i >= len(b) {
		return -1, errSyntax
	}
	var want int
	switch {
	case b[i] == '{' && n.names != nil:
		want = len(n.names)
	case b[i] == '[' && n.indexes != nil:
		want = len(n.indexes)
	default:
		return -1, nil
	}
	it := newLazyIterator(b, i)
	var m member
	found := 0
	var seen64 uint64 // which children were found (the first of duplicate keys wins)
	var seen []bool
	if n.kids > 64 {
		seen = make([]bool, n.kids)
	}
	for k := 0; it.next(&m); k++ {
		var c *trieNode
		if it.obj {
			raw := b[m.keyStart+1 : m.keyEnd-1]
			if m.escaped {
				raw = unescape(nil, raw)
			}
			c = n.child(raw)
		} else {
			c = n.indexes[k]
		}
		if c == nil {
			if !it.obj && k >= n.maxIdx {
				return -1, nil
			}
			continue
		}
		if seen != nil {
			if seen[c.id] {
				continue
			}
			seen[c.id] = true
		} else {
			if seen64&(1<<c.id) != 0 {
				continue
			}
			seen64 |= 1 << c.id
		}
		end, err := c.eval(b, m.valStart, depth+1, starts)
		if err != nil {
			return -1, err
		}
		if end >= 0 {
			it.consumed(end)
		}
		if found++; found == want {
			return -1, nil
		}
	}
	if it.err != nil {
		return -1, it.err
	}
	return it.i, nil
}

type named struct {
	name string
	node *trieNode
}

// child returns the child named key, or nil.
func (n *trieNode) child(key []byte) *trieNode {
	if len(n.list) > 8 {
		return n.names[string(key)]
	}
	for _, c := range n.list {
		if c.name == string(key) {
			return c.node
		}
	}
	return nil
}
