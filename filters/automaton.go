package filters

import (
	"math"
	"net/netip"
	"sort"
)

// This file is the shared automaton all rules of a bus compile into.
//
// Each branch of each pattern is a chain of conditions in a canonical order
// (specClass, then path). Chains are inserted into a trie of states: a state
// has one transition per event path, and a transition leads to one next
// state per distinct leaf array (identical conditions of different rules
// share states). A transition indexes the alternatives of all its leaf
// arrays by value — hash maps for exact and case-folded values, byte tries
// for prefixes and suffixes, a table of elementary intervals for numeric
// ranges, per-length maps for CIDR blocks — so one event value finds all
// next states it leads to in one lookup whatever the number of rules. Only
// wildcard, contains, regex and anything-but alternatives are tried one by
// one (per distinct operand on that transition).
//
// Matching walks from the root: at each state, for each transition, the
// event's leaves at that path (found through the flattener's per-path
// lists) are looked up and the walk continues from the states reached. The
// work is proportional to the states visited, which is bounded by the
// event's leaves and the paths used, not by the number of rules.

type state struct {
	id      int32
	accepts []int32 // rules whose chain ends here
	trans   []*trans

	tmap map[int32]*trans // build time only
}

type trans struct {
	path   int32
	vi     valueIndex
	absent []*state // reached when no compatible leaf exists at path (exists:false)

	specs map[string]*state // build time only
}

// valueIndex finds the next states an event value leads to. It is kept
// small — presence bits, the exact strings (the common case) and a pointer
// to everything else — so that a lookup in a large, cache-cold automaton
// touches as few cache lines as possible.
type valueIndex struct {
	kinds uint8  // bit 1<<evKind set when a value of that kind can lead somewhere
	has   uint16 // has* bits: which indexes are present
	str   strSet
	x     *valueExt
}

// valueExt holds the indexes other than exact strings.
type valueExt struct {
	num     map[float64][]*state
	tru     []*state
	fls     []*state
	null    []*state
	any     []*state // exists: true
	fold    strSet
	prefix  *trieNode
	suffix  *trieNode // on reversed strings
	prefixF *trieNode // on folded strings
	suffixF *trieNode // on folded, reversed strings
	numeric numIndex
	cidr    cidrIndex
	linear  []linearAlt // wildcard, contains, regex, anything-but
}

const (
	hasStr uint16 = 1 << iota
	hasNum
	hasAny
	hasFoldAny // fold, prefixF or suffixF: the value's case fold is needed
	hasPrefix
	hasSuffix
	hasNumeric
	hasCIDR
	hasLinear
)

type linearAlt struct {
	a  *alt
	to *state
}

func addState(list []*state, s *state) []*state {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func (vi *valueIndex) add(a *alt, to *state) {
	if a.op == opString {
		vi.str.add(a.s, to)
		return
	}
	if vi.x == nil {
		vi.x = &valueExt{}
	}
	x := vi.x
	switch a.op {
	case opNumber:
		if x.num == nil {
			x.num = map[float64][]*state{}
		}
		x.num[a.num] = addState(x.num[a.num], to)
	case opTrue:
		x.tru = addState(x.tru, to)
	case opFalse:
		x.fls = addState(x.fls, to)
	case opNull:
		x.null = addState(x.null, to)
	case opExists:
		x.any = addState(x.any, to)
	case opFold:
		x.fold.add(a.s, to)
	case opPrefix:
		x.prefix = trieAdd(x.prefix, a.s, false, to)
	case opSuffix:
		x.suffix = trieAdd(x.suffix, a.s, true, to)
	case opPrefixFold:
		x.prefixF = trieAdd(x.prefixF, a.s, false, to)
	case opSuffixFold:
		x.suffixF = trieAdd(x.suffixF, a.s, true, to)
	case opNumeric:
		x.numeric.add(a.rng, to)
	case opCIDR:
		x.cidr.add(a.pfx, to)
	default:
		x.linear = append(x.linear, linearAlt{a: a, to: to})
	}
}

func (vi *valueIndex) finish() {
	if !vi.str.empty() {
		vi.has |= hasStr
		vi.kinds |= 1 << evString
	}
	x := vi.x
	if x == nil {
		return
	}
	x.numeric.finish()
	for _, t := range []*trieNode{x.prefix, x.suffix, x.prefixF, x.suffixF} {
		if t != nil {
			t.compress()
		}
	}
	set := func(cond bool, bit uint16, kinds uint8) {
		if cond {
			vi.has |= bit
			vi.kinds |= kinds
		}
	}
	const all = 1<<evString | 1<<evNumber | 1<<evTrue | 1<<evFalse | 1<<evNull
	set(x.num != nil || len(x.tru)+len(x.fls)+len(x.null) > 0, hasNum, 0)
	set(x.num != nil, 0, 1<<evNumber)
	set(len(x.tru) > 0, 0, 1<<evTrue)
	set(len(x.fls) > 0, 0, 1<<evFalse)
	set(len(x.null) > 0, 0, 1<<evNull)
	set(len(x.any) > 0, hasAny, all)
	set(!x.fold.empty() || x.prefixF != nil || x.suffixF != nil, hasFoldAny, 1<<evString)
	set(x.prefix != nil, hasPrefix, 1<<evString)
	set(x.suffix != nil, hasSuffix, 1<<evString)
	set(len(x.numeric.ranges) > 0, hasNumeric, 1<<evNumber)
	set(x.cidr.n > 0, hasCIDR, 1<<evString)
	set(len(x.linear) > 0, hasLinear, all)
}

// collect appends to sc.next, without duplicates, the states value f leads to.
func (vi *valueIndex) collect(sc *scratch, f *evField) {
	has := vi.has
	if f.kind == evString && has&hasStr != 0 {
		sc.addAll(vi.str.get(f.val))
	}
	if has&^hasStr == 0 {
		return
	}
	x := vi.x
	if has&hasAny != 0 {
		sc.addAll(x.any)
	}
	switch f.kind {
	case evString:
		if has&hasPrefix != 0 {
			x.prefix.walk(sc, f.val, false)
		}
		if has&hasSuffix != 0 {
			x.suffix.walk(sc, f.val, true)
		}
		if has&hasFoldAny != 0 {
			fv := sc.folded(f)
			if !x.fold.empty() {
				sc.addAll(x.fold.get(fv))
			}
			if x.prefixF != nil {
				x.prefixF.walk(sc, fv, false)
			}
			if x.suffixF != nil {
				x.suffixF.walk(sc, fv, true)
			}
		}
		if has&hasCIDR != 0 {
			if ip, ok := parseIP(f.val); ok {
				x.cidr.collect(sc, ip)
			}
		}
	case evNumber:
		if f.numOK {
			if x.num != nil {
				sc.addAll(x.num[f.num])
			}
			if has&hasNumeric != 0 {
				x.numeric.collect(sc, f.num)
			}
		}
	case evTrue:
		sc.addAll(x.tru)
	case evFalse:
		sc.addAll(x.fls)
	case evNull:
		sc.addAll(x.null)
	}
	if has&hasLinear != 0 {
		for i := range x.linear {
			l := &x.linear[i]
			if l.a.match(f, sc) {
				sc.add(l.to)
			}
		}
	}
}

// strSet maps exact strings to states: a short list scanned in order while
// small (the usual case past the first steps, where a Go map's hashing costs
// more than a few comparisons), a map beyond.
type strSet struct {
	keys []string
	vals [][]*state
	m    map[string][]*state
}

const strSetLinear = 8

func (ss *strSet) empty() bool { return len(ss.keys) == 0 && ss.m == nil }

func (ss *strSet) add(k string, to *state) {
	if ss.m != nil {
		ss.m[k] = addState(ss.m[k], to)
		return
	}
	for i, x := range ss.keys {
		if x == k {
			ss.vals[i] = addState(ss.vals[i], to)
			return
		}
	}
	ss.keys = append(ss.keys, k)
	ss.vals = append(ss.vals, []*state{to})
	if len(ss.keys) > strSetLinear {
		ss.m = make(map[string][]*state, len(ss.keys))
		for i, x := range ss.keys {
			ss.m[x] = ss.vals[i]
		}
		ss.keys, ss.vals = nil, nil
	}
}

func (ss *strSet) get(k []byte) []*state {
	if ss.m != nil {
		return ss.m[string(k)]
	}
	for i, x := range ss.keys {
		if len(x) == len(k) && x == string(k) {
			return ss.vals[i]
		}
	}
	return nil
}

// trieNode is a byte trie of prefixes (or reversed suffixes). After
// building, chains of nodes with one child and no states are folded into
// skip, the bytes that must follow the key byte leading to the node, so a
// long shared prefix costs one comparison instead of a lookup per byte.
type trieNode struct {
	keys   []byte
	kids   []*trieNode
	skip   string // in walk order (reversed for suffix tries)
	states []*state
}

func (n *trieNode) compress() {
	for j, k := range n.kids {
		for len(k.states) == 0 && len(k.keys) == 1 {
			c := k.kids[0]
			c.skip = k.skip + string(k.keys[:1]) + c.skip
			k = c
		}
		n.kids[j] = k
		k.compress()
	}
}

func trieAdd(root *trieNode, s string, reverse bool, to *state) *trieNode {
	if root == nil {
		root = &trieNode{}
	}
	n := root
	for i := 0; i < len(s); i++ {
		c := s[i]
		if reverse {
			c = s[len(s)-1-i]
		}
		var next *trieNode
		for j, k := range n.keys {
			if k == c {
				next = n.kids[j]
				break
			}
		}
		if next == nil {
			next = &trieNode{}
			// keep keys sorted for binary search
			j := sort.Search(len(n.keys), func(j int) bool { return n.keys[j] > c })
			n.keys = append(n.keys, 0)
			copy(n.keys[j+1:], n.keys[j:])
			n.keys[j] = c
			n.kids = append(n.kids, nil)
			copy(n.kids[j+1:], n.kids[j:])
			n.kids[j] = next
		}
		n = next
	}
	n.states = addState(n.states, to)
	return root
}

func (n *trieNode) child(c byte) *trieNode {
	keys := n.keys
	lo, hi := 0, len(keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch k := keys[m]; {
		case k == c:
			return n.kids[m]
		case k < c:
			lo = m + 1
		default:
			hi = m
		}
	}
	return nil
}

func (n *trieNode) walk(sc *scratch, v []byte, reverse bool) {
	sc.addAll(n.states)
	for i := 0; i < len(v); {
		c := v[i]
		if reverse {
			c = v[len(v)-1-i]
		}
		i++
		if n = n.child(c); n == nil {
			return
		}
		if s := n.skip; s != "" {
			if len(v)-i < len(s) {
				return
			}
			if reverse {
				for k := 0; k < len(s); k++ {
					if v[len(v)-1-i-k] != s[k] {
						return
					}
				}
			} else if string(v[i:i+len(s)]) != s {
				return
			}
			i += len(s)
		}
		sc.addAll(n.states)
	}
}

// numIndex finds the numeric ranges containing a value. Past a few ranges
// it builds a table of elementary intervals (each boundary point and each
// open interval between two boundaries) listing the ranges covering it, so
// a lookup is a binary search; the table is skipped, and ranges are tried one
// by one, when overlapping ranges would make it too large.
type numIndex struct {
	ranges []numRange
	to     []*state
	bounds []float64  // sorted distinct boundaries
	slots  [][]*state // 2*len(bounds)+1 slots
}

func (ni *numIndex) add(r numRange, to *state) {
	ni.ranges = append(ni.ranges, r)
	ni.to = append(ni.to, to)
}

const numLinearMax = 8

func (ni *numIndex) finish() {
	if len(ni.ranges) <= numLinearMax {
		return
	}
	set := map[float64]bool{}
	for _, r := range ni.ranges {
		if !math.IsInf(r.lo, 0) {
			set[r.lo] = true
		}
		if !math.IsInf(r.hi, 0) {
			set[r.hi] = true
		}
	}
	bounds := make([]float64, 0, len(set))
	for b := range set {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	// slot 2k+1 is bounds[k]; slot 2k is the open interval below bounds[k].
	slotOf := func(x float64, open bool, above bool) int {
		k := sort.SearchFloat64s(bounds, x)
		if !open {
			return 2*k + 1
		}
		if above {
			return 2*k + 2
		}
		return 2 * k
	}
	total := 0
	lohi := make([][2]int, len(ni.ranges))
	for i, r := range ni.ranges {
		lo, hi := 0, 2*len(bounds)
		if !math.IsInf(r.lo, 0) {
			lo = slotOf(r.lo, !r.loInc, true)
		}
		if !math.IsInf(r.hi, 0) {
			hi = slotOf(r.hi, !r.hiInc, false)
		}
		lohi[i] = [2]int{lo, hi}
		total += hi - lo + 1
	}
	if total > 64*len(ni.ranges)+4096 {
		return
	}
	slots := make([][]*state, 2*len(bounds)+1)
	for i, lh := range lohi {
		for s := lh[0]; s <= lh[1]; s++ {
			slots[s] = addState(slots[s], ni.to[i])
		}
	}
	ni.bounds, ni.slots = bounds, slots
}

func (ni *numIndex) collect(sc *scratch, x float64) {
	if ni.slots == nil {
		for i, r := range ni.ranges {
			if r.contains(x) {
				sc.add(ni.to[i])
			}
		}
		return
	}
	b := ni.bounds
	lo, hi := 0, len(b)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	slot := 2 * lo
	if lo < len(b) && b[lo] == x {
		slot++
	}
	sc.addAll(ni.slots[slot])
}

// cidrIndex finds the CIDR blocks containing an address: one map per
// distinct prefix length, so a lookup costs one masking and one map probe
// per length in use.
type cidrIndex struct {
	n    int
	lens map[int]map[netip.Prefix][]*state
	v4   []int
	v6   []int
}

func (ci *cidrIndex) add(p netip.Prefix, to *state) {
	if ci.lens == nil {
		ci.lens = map[int]map[netip.Prefix][]*state{}
	}
	bits := p.Bits()
	key := bits
	if p.Addr().Is6() {
		key = 1000 + bits
	}
	m := ci.lens[key]
	if m == nil {
		m = map[netip.Prefix][]*state{}
		ci.lens[key] = m
		if p.Addr().Is6() {
			ci.v6 = append(ci.v6, bits)
		} else {
			ci.v4 = append(ci.v4, bits)
		}
	}
	m[p] = addState(m[p], to)
	ci.n++
}

func (ci *cidrIndex) collect(sc *scratch, ip netip.Addr) {
	lens, off := ci.v4, 0
	if ip.Is6() {
		lens, off = ci.v6, 1000
	}
	for _, bits := range lens {
		p, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		sc.addAll(ci.lens[off+bits][p])
	}
}

// --- scratch helpers used while walking ---

func (sc *scratch) add(s *state) {
	// Small sets (the common case) are de-duplicated by a scan, which stays
	// in cache; past 16 states the per-state stamps take over.
	seg := sc.next[sc.mark:]
	if len(seg) < 16 {
		for _, x := range seg {
			if x == s {
				return
			}
		}
		sc.next = append(sc.next, s)
		if len(seg) == 15 {
			for _, x := range sc.next[sc.mark:] {
				sc.stateGen[x.id] = sc.sgen
			}
		}
		return
	}
	if sc.stateGen[s.id] != sc.sgen {
		sc.stateGen[s.id] = sc.sgen
		sc.next = append(sc.next, s)
	}
}

func (sc *scratch) addAll(list []*state) {
	for _, s := range list {
		sc.add(s)
	}
}

// newCollect starts a new de-duplicated set at the end of sc.next.
func (sc *scratch) newCollect() {
	sc.mark = len(sc.next)
	sc.sgen++
	if sc.sgen == 0 {
		clear(sc.stateGen)
		sc.sgen = 1
	}
}

// compatible reports whether field f can be combined with the fields
// already chosen: for every array they share, the same element.
func (sc *scratch) compatible(f *evField) bool {
	if f.trailN == 0 {
		return true
	}
	ft := sc.trailOf(f)
	for _, u := range sc.used {
		if !trailsAgree(ft, sc.trailOf(&sc.fields[u])) {
			return false
		}
	}
	return true
}

// trailsAgree reports whether two trails pick the same element of every
// array instance they share. An array instance sits at the same depth in
// every trail that contains it, so trails agree up to the first level where
// they name different arrays. Two leaves that are both elements of one
// array of scalars agree: "tags has a and tags has b" holds for ["a","b"].
func trailsAgree(a, b []arrayPos) bool {
	n := min(len(a), len(b))
	for k := 0; k < n; k++ {
		if a[k].arr != b[k].arr {
			return true
		}
		if a[k].idx != b[k].idx {
			return a[k].leaf && b[k].leaf
		}
	}
	return true
}

// absent reports whether no leaf at path can be combined with the fields
// already chosen.
func (sc *scratch) absent(path int32) bool {
	for i := sc.head[path]; i >= 0; i = sc.fields[i].next {
		if sc.compatible(&sc.fields[i]) {
			return false
		}
	}
	return true
}

// maxSteps bounds the work of one Match. Only adversarial combinations
// (many patterns fields spread over several large arrays whose elements all
// match) come near it; hitting it fails the event with ErrTooComplex rather
// than stalling the router.
const maxSteps = 1 << 20

type walkAbort struct{}

func (sc *scratch) walk(s *state) {
	sc.steps++
	if sc.steps > maxSteps {
		panic(walkAbort{})
	}
	for _, r := range s.accepts {
		if sc.ruleGen[r] != sc.rgen {
			sc.ruleGen[r] = sc.rgen
			sc.hits = append(sc.hits, r)
		}
	}
	for _, t := range s.trans {
		for fi := sc.head[t.path]; fi >= 0; fi = sc.fields[fi].next {
			f := &sc.fields[fi]
			if t.vi.kinds&(1<<f.kind) == 0 || !sc.compatible(f) {
				continue
			}
			mark := len(sc.next)
			sc.newCollect()
			t.vi.collect(sc, f)
			end := len(sc.next)
			if end == mark {
				continue
			}
			sc.steps += end - mark
			pushed := f.trailN > 0
			if pushed {
				sc.used = append(sc.used, fi)
			}
			for k := mark; k < end; k++ {
				sc.walk(sc.next[k])
			}
			if pushed {
				sc.used = sc.used[:len(sc.used)-1]
			}
			sc.next = sc.next[:mark]
		}
		if len(t.absent) > 0 && sc.absent(t.path) {
			for _, n := range t.absent {
				sc.walk(n)
			}
		}
	}
}

// automaton is the compiled form of all rules of a bus.
type automaton struct {
	root    *state
	nstates int
	paths   *pathNode
	npaths  int
	names   []string // dotted path per path id
}

func newAutomaton() *automaton {
	a := &automaton{paths: newPathNode()}
	a.root = a.newState()
	return a
}

func (a *automaton) newState() *state {
	s := &state{id: int32(a.nstates)}
	a.nstates++
	return s
}

// pathID returns the id of a leaf path, registering it in the trie.
func (a *automaton) pathID(c *cond) int32 {
	n := a.paths
	for _, s := range c.segs {
		n = n.add(s)
	}
	if n.leaf < 0 {
		n.leaf = int32(a.npaths)
		a.npaths++
		a.names = append(a.names, c.path)
	}
	return n.leaf
}

// orderBranch sorts a branch's conditions into the chain order: by class
// (hash-indexed first, exists:false last); among positive conditions of one
// class, paths on which the rule set has more distinct conditions first, as
// they split the rules into smaller groups (rank may be nil); then by path.
// The order of positive conditions does not change the result, and
// exists:false conditions always come after every positive one.
func orderBranch(br branch, rank map[string]int) branch {
	out := append(branch(nil), br...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.spec.class != b.spec.class {
			return a.spec.class < b.spec.class
		}
		if a.spec.class <= 3 && rank[a.path] != rank[b.path] {
			return rank[a.path] > rank[b.path]
		}
		if a.path != b.path {
			return a.path < b.path
		}
		return a.spec.key < b.spec.key
	})
	return out
}

// rankPaths counts the distinct conditions per path over all rules.
func rankPaths(pats []*compiledPattern) map[string]int {
	seen := map[string]bool{}
	rank := map[string]int{}
	for _, cp := range pats {
		for _, br := range cp.branches {
			for _, c := range br {
				k := c.path + "\x00" + c.spec.key
				if !seen[k] {
					seen[k] = true
					rank[c.path]++
				}
			}
		}
	}
	return rank
}

// insert adds one branch of rule r.
func (a *automaton) insert(br branch, r int32, rank map[string]int) {
	s := a.root
	for _, c := range orderBranch(br, rank) {
		pid := a.pathID(c)
		if s.tmap == nil {
			s.tmap = map[int32]*trans{}
		}
		t := s.tmap[pid]
		if t == nil {
			t = &trans{path: pid, specs: map[string]*state{}}
			s.tmap[pid] = t
			s.trans = append(s.trans, t)
		}
		next := t.specs[c.spec.key]
		if next == nil {
			next = a.newState()
			t.specs[c.spec.key] = next
			for i := range c.spec.alts {
				t.vi.add(&c.spec.alts[i], next)
			}
			if c.spec.absent {
				t.absent = append(t.absent, next)
			}
		}
		s = next
	}
	for _, x := range s.accepts {
		if x == r {
			return
		}
	}
	s.accepts = append(s.accepts, r)
}

// finish drops build-time maps and builds the lookup tables.
func (a *automaton) finish() {
	var visit func(s *state)
	visit = func(s *state) {
		s.tmap = nil
		for _, t := range s.trans {
			t.vi.finish()
			for _, n := range t.specs {
				visit(n)
			}
			t.specs = nil
		}
	}
	visit(a.root)
}
