package filters

import (
	"strconv"
	"unsafe"
)

// This file flattens an event into its leaf values in one pass over the
// bytes, without building maps: only the paths some pattern uses are kept
// (a trie of field names says which), every other subtree is skipped after
// a structural check. Each kept leaf records its path id, its value and its
// array trail (which element of which array it came from) so that a match
// never combines fields taken from different elements of one array.

// pathNode is one field name in the trie of paths used by patterns.
type pathNode struct {
	names []string // small fan-out: linear search
	nodes []*pathNode
	table [][]int32 // large fan-out: buckets of indexes by keyHash
	leaf  int32     // path id if some pattern tests this path as a leaf, else -1
}

const pathTableSize = 64

// keyHash is a cheap hash of a field name (length, first and last bytes)
// that spreads the field names of one object well enough.
func keyHash(k []byte) int {
	if len(k) == 0 {
		return 0
	}
	return (len(k)*31 + int(k[0])*7 + int(k[len(k)-1])) & (pathTableSize - 1)
}

func newPathNode() *pathNode { return &pathNode{leaf: -1} }

func (n *pathNode) child(name string) *pathNode {
	for i, k := range n.names {
		if k == name {
			return n.nodes[i]
		}
	}
	return nil
}

func (n *pathNode) add(name string) *pathNode {
	if c := n.child(name); c != nil {
		return c
	}
	c := newPathNode()
	n.names = append(n.names, name)
	n.nodes = append(n.nodes, c)
	if len(n.names) > 6 {
		n.table = make([][]int32, pathTableSize)
		for i, k := range n.names {
			h := keyHash([]byte(k))
			n.table[h] = append(n.table[h], int32(i))
		}
	}
	return c
}

func (n *pathNode) lookup(key []byte) *pathNode {
	if len(key) == 0 {
		return n.child("")
	}
	if n.table != nil {
		for _, i := range n.table[keyHash(key)] {
			if k := n.names[i]; len(k) == len(key) && k[0] == key[0] && k == string(key) {
				return n.nodes[i]
			}
		}
		return nil
	}
	for i, k := range n.names {
		if len(k) == len(key) && k[0] == key[0] && k == string(key) {
			return n.nodes[i]
		}
	}
	return nil
}

func (n *pathNode) hasKids() bool { return len(n.names) > 0 }

type evKind uint8

const (
	evString evKind = iota + 1
	evNumber
	evTrue
	evFalse
	evNull
)

// evField is one leaf value of the event at a path some pattern uses.
type evField struct {
	val     []byte // string contents (unescaped) or the number's text
	num     float64
	path    int32
	trail0  int32 // trail is scratch.trails[trail0 : trail0+trailN]
	trailN  int32
	next    int32 // next field with the same path, -1 at the end
	fold0   int32 // case fold of val is scratch.buf[fold0:fold1], once folded
	fold1   int32
	h       uint64 // hash of val, once hashed
	fh      uint64 // hash of the case fold, once hashed
	kind    evKind
	numOK   bool // num holds the value (false for numbers beyond float64)
	folded  bool
	hashed  bool
	fhashed bool
}

// arrayPos says that a field lies in element idx of array instance arr.
// leaf is set when the element is the leaf value itself (an array of
// scalars): sibling leaves of one such array may satisfy different
// conditions on that path, since there is no object element to keep whole.
type arrayPos struct {
	arr, idx int32
	leaf     bool
}

// scratch is the per-call working memory of Match, pooled per matcher so
// that the hot path does not allocate.
type scratch struct {
	fields  []evField
	trails  []arrayPos
	trail   []arrayPos // current trail while flattening
	buf     []byte     // unescaped strings and folds
	head    []int32    // per path id: first field, -1 if none
	tail    []int32
	touched []int32
	narrays int32

	a        *automaton
	used     []int32 // fields chosen on the current automaton path (only those with trails)
	next     []int32 // state ids
	mark     int     // start of the set being collected in next
	stateGen []uint32
	sgen     uint32
	ruleGen  []uint32
	rgen     uint32
	hits     []int32
	steps    int

	env *filterEnv
}

func newScratch(npaths, nstates, nrules int) *scratch {
	sc := &scratch{
		head:     make([]int32, npaths),
		tail:     make([]int32, npaths),
		stateGen: make([]uint32, nstates),
		ruleGen:  make([]uint32, nrules),
	}
	for i := range sc.head {
		sc.head[i] = -1
	}
	return sc
}

func (sc *scratch) reset() {
	for _, p := range sc.touched {
		sc.head[p] = -1
	}
	sc.touched = sc.touched[:0]
	sc.fields = sc.fields[:0]
	sc.trails = sc.trails[:0]
	sc.trail = sc.trail[:0]
	sc.buf = sc.buf[:0]
	sc.narrays = 0
	sc.used = sc.used[:0]
	sc.next = sc.next[:0]
	sc.hits = sc.hits[:0]
	sc.steps = 0
	if sc.env != nil {
		sc.env.reset()
	}
}

// folded returns the case fold of a string field, computing it once.
func (sc *scratch) folded(f *evField) []byte {
	if !f.folded {
		f.fold0 = int32(len(sc.buf))
		sc.buf = appendFold(sc.buf, f.val)
		f.fold1 = int32(len(sc.buf))
		f.folded = true
	}
	return sc.buf[f.fold0:f.fold1:f.fold1]
}

func (sc *scratch) trailOf(f *evField) []arrayPos {
	return sc.trails[f.trail0 : f.trail0+f.trailN]
}

// emit records one leaf; elem says it is directly an array element.
func (sc *scratch) emit(path int32, kind evKind, val []byte, elem bool) {
	i := int32(len(sc.fields))
	if len(sc.fields) < cap(sc.fields) {
		sc.fields = sc.fields[:i+1]
	} else {
		sc.fields = append(sc.fields, evField{})
	}
	f := &sc.fields[i]
	f.val, f.path, f.kind, f.next = val, path, kind, -1
	f.trailN, f.numOK, f.folded, f.hashed, f.fhashed = 0, false, false, false, false
	if kind == evNumber {
		f.num, f.numOK = parseJSONNumber(val)
	}
	if len(sc.trail) > 0 {
		f.trail0 = int32(len(sc.trails))
		f.trailN = int32(len(sc.trail))
		sc.trails = append(sc.trails, sc.trail...)
		if elem {
			sc.trails[len(sc.trails)-1].leaf = true
		}
	}
	if sc.head[path] < 0 {
		sc.head[path] = i
		sc.touched = append(sc.touched, path)
	} else {
		sc.fields[sc.tail[path]].next = i
	}
	sc.tail[path] = i
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseJSONNumber converts a valid JSON number. Numbers of at most 15
// digits without exponent take an exact fast path: the digits form an
// integer below 2^53 and dividing it by an exactly representable power of
// ten is correctly rounded, as ParseFloat would round. Numbers beyond
// float64 report false.
func parseJSONNumber(v []byte) (float64, bool) {
	if len(v) <= 16 {
		neg, d := false, v
		if d[0] == '-' {
			neg, d = true, d[1:]
		}
		n, frac, digits, dot := int64(0), 0, 0, false
		ok := true
		for _, c := range d {
			switch {
			case '0' <= c && c <= '9':
				n = n*10 + int64(c-'0')
				digits++
				if dot {
					frac++
				}
			case c == '.' && !dot:
				dot = true
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		if ok && digits <= 15 {
			x := float64(n) / pow10[frac]
			if neg {
				x = -x
			}
			if x == 0 {
				x = 0 // -0 is 0
			}
			return x, true
		}
	}
	x, err := strconv.ParseFloat(unsafe.String(&v[0], len(v)), 64)
	if err != nil {
		return 0, false
	}
	if x == 0 {
		x = 0
	}
	return x, true
}

// flatten parses the event and records the leaves at the paths of root.
func (sc *scratch) flatten(b []byte, root *pathNode) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return synErr(i, "an event must be a JSON object")
	}
	i, err := sc.object(b, i, root, 1)
	if err != nil {
		return err
	}
	if i = skipWS(b, i); i != len(b) {
		return synErr(i, "unexpected data after the event object")
	}
	return nil
}

func (sc *scratch) value(b []byte, i int, n *pathNode, depth int, elem bool) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) {
		return 0, synErr(i, "unexpected end of input")
	}
	switch c := b[i]; c {
	case '{':
		if !n.hasKids() {
			return skipValue(b, i, depth)
		}
		return sc.object(b, i, n, depth+1)
	case '[':
		return sc.array(b, i, n, depth+1)
	case '"':
		end, esc, err := scanString(b, i)
		if err != nil {
			return 0, err
		}
		if n.leaf >= 0 {
			v := b[i+1 : end-1]
			if esc {
				start := len(sc.buf)
				sc.buf = unescape(sc.buf, v)
				v = sc.buf[start:len(sc.buf):len(sc.buf)]
			}
			sc.emit(n.leaf, evString, v, elem)
		}
		return end, nil
	case 't', 'f', 'n':
		lit, kind := "null", evNull
		if c == 't' {
			lit, kind = "true", evTrue
		} else if c == 'f' {
			lit, kind = "false", evFalse
		}
		end, err := scanLiteral(b, i, lit)
		if err != nil {
			return 0, err
		}
		if n.leaf >= 0 {
			sc.emit(n.leaf, kind, nil, elem)
		}
		return end, nil
	default:
		end, err := scanNumber(b, i)
		if err != nil {
			return 0, err
		}
		if n.leaf >= 0 {
			sc.emit(n.leaf, evNumber, b[i:end], elem)
		}
		return end, nil
	}
}

func (sc *scratch) object(b []byte, i int, n *pathNode, depth int) (int, error) {
	if depth >= maxJSONDepth {
		return 0, synErr(i, "nested too deeply")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, synErr(i, "expected object key")
		}
		end, esc, err := scanString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i+1 : end-1]
		var child *pathNode
		if esc {
			start := len(sc.buf)
			sc.buf = unescape(sc.buf, key)
			child = n.lookup(sc.buf[start:])
			sc.buf = sc.buf[:start]
		} else {
			child = n.lookup(key)
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, synErr(i, "expected ':'")
		}
		if child == nil {
			i, err = skipValue(b, i+1, depth)
		} else {
			i, err = sc.value(b, i+1, child, depth, false)
		}
		if err != nil {
			return 0, err
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		return 0, synErr(i, "expected ',' or '}'")
	}
}

func (sc *scratch) array(b []byte, i int, n *pathNode, depth int) (int, error) {
	if depth >= maxJSONDepth {
		return 0, synErr(i, "nested too deeply")
	}
	arr := sc.narrays
	sc.narrays++
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for idx := int32(0); ; idx++ {
		sc.trail = append(sc.trail, arrayPos{arr: arr, idx: idx})
		var err error
		i, err = sc.value(b, i, n, depth, true)
		sc.trail = sc.trail[:len(sc.trail)-1]
		if err != nil {
			return 0, err
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		return 0, synErr(i, "expected ',' or ']'")
	}
}
