package filters

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// This file is the shared automaton all rules of a bus compile into.
//
// Each branch of each pattern is a chain of conditions in a canonical order
// (specClass, then path). Chains are inserted into a trie of states: a state
// has one transition per event path, and a transition leads to one next
// state per distinct leaf array (identical conditions of different rules
// share states). A transition indexes the alternatives of all its leaf
// arrays by value — a short key list or one shared hash table for exact and
// case-folded values, prefixes and suffixes (looked up per distinct key
// length, or by byte trie past a few lengths) and CIDR blocks (per prefix
// length), a table of elementary intervals for numeric ranges — so one
// event value finds all next states it leads to in a few lookups whatever
// the number of rules. Only wildcard, contains, regex (except anchored
// literals, indexed as prefixes) and anything-but alternatives are tried
// one by one (per distinct operand on that transition).
//
// Matching walks from the root: at each state, for each transition, the
// event's leaves at that path (found through the flattener's per-path
// lists) are looked up and the walk continues from the states reached. The
// work is proportional to the states visited, which is bounded by the
// event's leaves and the paths used, not by the number of rules.

// The automaton is built as a graph of build-time states (bstate, btrans)
// and then compiled, by finish, into flat arrays indexed by int32: states
// in depth-first order, each state's transitions contiguous, and one hash
// table (strTable) holding, for every transition, its exact strings, case
// folds, prefixes, suffixes and CIDR blocks. A lookup in a large,
// cache-cold automaton so touches a few adjacent cache lines instead of
// following a pointer per step, and an event value is hashed once whatever
// the number of transitions that look it up. Prefixes and suffixes are
// looked up once per distinct key length on the transition (a byte trie
// takes over past maxAffixLens lengths); CIDR blocks once per prefix length.

// state is one state of the compiled automaton.
type state struct {
	trans0, trans1 int32 // its transitions: automaton.trans[trans0:trans1]
	acc            int32 // rules whose chain ends here: noState, a rule, or ^i for the list at automaton.accepts[i]
}

// trans is one transition: the conditions on one event path. The keys of
// its hashed indexes are in automaton.strs under strKey(its index, kind);
// everything else is in x.
type trans struct {
	path   int32
	k0     int32  // its small key list: automaton.small[k0 : k0+kn]
	l0, l1 int32  // its linear alternatives: automaton.linear[l0:l1]
	r0, r1 int32  // its numeric ranges, when few: automaton.ranges[r0:r1]
	x      int32  // its other indexes: automaton.exts[x], or -1
	has    uint16 // has* bits: which indexes are present
	kinds  uint8  // bit 1<<evKind set when a value of that kind can lead somewhere
	kn     uint8
}

// smallKeys (at most 255) is the largest number of keys (exact, folded,
// prefixes, suffixes and CIDR blocks together) that a transition keeps in
// a small key list, compared one by one, rather than in the strTable.
// Lists are laid out in state order, so the keys of all transitions of a
// state share a few cache lines. A variable only so that tests can force
// either layout.
var smallKeys = 8

// keyEnt is one key of a small key list.
type keyEnt struct {
	off  int32 // key bytes: inl[:n] if n <= len(inl), else automaton.smallBytes[off : off+n]
	n    int32
	to   int32 // as in strSlot
	kind uint8
	inl  [19]byte
}

// Kinds of keys in the strTable.
const (
	kExact = iota
	kFold
	kPrefix
	kSuffix
	kPrefixF // prefix of the case fold
	kSuffixF // suffix of the case fold
	kCIDR
	nKeyKinds = 8
)

// maxAffixLens is the largest number of distinct prefix (or suffix) lengths
// on one transition that are looked up by hashing; past it a byte trie
// finds them in one pass over the value.
var maxAffixLens = 8

// valueExt holds the indexes other than exact strings. State lists hold
// state ids.
type valueExt struct {
	affix   [4][]int32   // per kPrefix..kSuffixF: the key lengths, ascending, when hashed
	sigs    [4]affixSigs // per kPrefix..kSuffixF: the signatures of the hashed keys
	tries   [4]*trieNode // per kPrefix..kSuffixF: the trie, past maxAffixLens lengths
	cidr4   []int32      // CIDR prefix lengths in use, IPv4
	cidr6   []int32      // and IPv6
	num     map[float64][]int32
	tru     []int32
	fls     []int32
	null    []int32
	any     []int32 // exists: true
	absent  []int32 // reached when no compatible leaf exists at path (exists:false)
	numeric numIndex
	linear  []linearAlt // wildcard, contains, regex, anything-but
}

const (
	hasStr uint16 = 1 << iota
	hasNum
	hasAny
	hasFoldAny // a fold-based index: the value's case fold is needed
	hasPrefix
	hasSuffix
	hasNumeric
	hasCIDR
	hasLinear
	hasAbsent
	hasFold
	hasSmall
	hasNumTab
)

// affixSigs is a one-hash Bloom filter of the prefixes (or suffixes) of a
// transition that are looked up by hashing: a lookup whose signature bit
// is clear cannot find a key, so it skips hashing the value's prefix and
// probing the strTable (a cache miss in a large automaton). Values that
// share the first bytes of many keys (event types) usually find no key at
// most of the lengths tried.
type affixSigs [4]uint64

// affixSig is the signature of a prefix (or suffix) k: its length and its
// last (for a suffix, first) eight bytes.
func affixSig(k []byte, suffix bool) uint8 {
	n := len(k)
	var w uint64
	switch {
	case n >= 8 && suffix:
		w = binary.LittleEndian.Uint64(k)
	case n >= 8:
		w = binary.LittleEndian.Uint64(k[n-8:])
	default:
		for _, c := range k {
			w = w<<8 | uint64(c)
		}
	}
	return uint8(((w ^ uint64(n)*0x9e3779b97f4a7c15) * 0xff51afd7ed558ccd) >> 56)
}

func (s *affixSigs) add(sig uint8)      { s[sig>>6] |= 1 << (sig & 63) }
func (s *affixSigs) has(sig uint8) bool { return s[sig>>6]&(1<<(sig&63)) != 0 }

type linearAlt struct {
	a  *alt
	to int32
}

func addState(list []int32, s int32) []int32 {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// bstate and btrans are the build-time automaton; finish compiles them.
type bstate struct {
	id      int32
	accepts []int32
	trans   []*btrans
	tmap    map[int32]*btrans
}

type btrans struct {
	path  int32
	specs map[string]*bstate
	kids  []*bstate                     // the states of specs, in insertion order
	tab   [nKeyKinds]map[string][]int32 // hashed keys per kind
	keys  []string                      // kind byte + key, in insertion order
	x     valueExt
	xused bool
}

func (t *btrans) addKey(kind int, k string, to int32) {
	m := t.tab[kind]
	if m == nil {
		m = map[string][]int32{}
		t.tab[kind] = m
	}
	if _, ok := m[k]; !ok {
		t.keys = append(t.keys, string(rune(kind))+k)
	}
	m[k] = addState(m[k], to)
}

// stringKind is the table kind of each alternative indexed by its string.
var stringKind = map[op]int{
	opString: kExact, opFold: kFold, opPrefix: kPrefix, opSuffix: kSuffix,
	opPrefixFold: kPrefixF, opSuffixFold: kSuffixF,
}

// add indexes alternative a leading to build-time state to. Linear
// alternatives are shared through intern, so that the rules of a bus hold
// one copy (one compiled regex) per distinct operand.
func (t *btrans) add(a *alt, to int32, intern map[string]*alt) {
	if kind, ok := stringKind[a.op]; ok {
		t.addKey(kind, a.s, to)
		return
	}
	switch a.op {
	case opCIDR:
		t.addKey(kCIDR, string(appendCIDRKey(nil, a.pfx)), to)
		return
	case opRegex:
		if lit, kind, ok := regexLiteral(a.re); ok {
			t.addKey(kind, lit, to)
			return
		}
	}
	t.xused = true
	x := &t.x
	switch a.op {
	case opNumber:
		if x.num == nil {
			x.num = map[float64][]int32{}
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
	case opNumeric:
		x.numeric.add(a.rng, to)
	default:
		if c := intern[a.key]; c != nil {
			a = c
		} else {
			intern[a.key] = a
		}
		x.linear = append(x.linear, linearAlt{a: a, to: to})
	}
}

// regexLiteral reports whether re is an anchored literal, "^lit" or
// "^lit$", which matches exactly the strings with prefix lit, or the string
// lit: such regexes are indexed as prefixes or exact strings.
func regexLiteral(re *regexp.Regexp) (lit string, kind int, ok bool) {
	r, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return "", 0, false
	}
	r = r.Simplify()
	if r.Op != syntax.OpConcat || len(r.Sub) < 2 || len(r.Sub) > 3 || r.Sub[0].Op != syntax.OpBeginText {
		return "", 0, false
	}
	l := r.Sub[1]
	if l.Op != syntax.OpLiteral || l.Flags&syntax.FoldCase != 0 || slices.Contains(l.Rune, utf8.RuneError) {
		return "", 0, false
	}
	kind = kPrefix
	if len(r.Sub) == 3 {
		if r.Sub[2].Op != syntax.OpEndText {
			return "", 0, false
		}
		kind = kExact
	}
	return string(l.Rune), kind, true
}

// appendCIDRKey appends the strTable key of a masked CIDR block: its
// address bytes (4 or 16) and its length.
func appendCIDRKey(dst []byte, p netip.Prefix) []byte {
	if a := p.Addr(); a.Is4() {
		b := a.As4()
		dst = append(dst, b[:]...)
	} else {
		b := a.As16()
		dst = append(dst, b[:]...)
	}
	return append(dst, byte(p.Bits()))
}

// cidrKeyContains reports whether the block of a key made by appendCIDRKey
// contains ip, as the strTable lookup of cidrs would find it.
func cidrKeyContains(k []byte, ip netip.Addr) bool {
	if ip.Is6() != (len(k) == 16+1) {
		return false
	}
	p, err := ip.Prefix(int(k[len(k)-1]))
	if err != nil {
		return false
	}
	var buf [17]byte
	return string(appendCIDRKey(buf[:0], p)) == string(k)
}

// remap renames the states of x (build-time ids) to their final ids.
func (x *valueExt) remap(perm []int32) {
	lists := [][]int32{x.tru, x.fls, x.null, x.any, x.absent}
	for _, l := range x.num {
		lists = append(lists, l)
	}
	for _, l := range lists {
		for i, s := range l {
			l[i] = perm[s]
		}
	}
	for i := range x.linear {
		x.linear[i].to = perm[x.linear[i].to]
	}
	for i := range x.numeric.ranges {
		x.numeric.ranges[i].to = perm[x.numeric.ranges[i].to]
	}
}

// finish builds the lookup tables of x and returns its has and kinds bits
// (those of the hashed keys excepted).
func (x *valueExt) finish() (has uint16, kinds uint8) {
	x.numeric.finish()
	set := func(cond bool, bit uint16, k uint8) {
		if cond {
			has |= bit
			kinds |= k
		}
	}
	const all = 1<<evString | 1<<evNumber | 1<<evTrue | 1<<evFalse | 1<<evNull
	set(x.num != nil || len(x.tru)+len(x.fls)+len(x.null) > 0, hasNum, 0)
	set(x.num != nil, 0, 1<<evNumber)
	set(len(x.tru) > 0, 0, 1<<evTrue)
	set(len(x.fls) > 0, 0, 1<<evFalse)
	set(len(x.null) > 0, 0, 1<<evNull)
	set(len(x.any) > 0, hasAny, all)
	set(len(x.numeric.ranges) > 0 && x.numeric.slots == nil, hasNumeric, 1<<evNumber)
	set(x.numeric.slots != nil, hasNumTab, 1<<evNumber)
	set(len(x.linear) > 0, hasLinear, all)
	set(len(x.absent) > 0, hasAbsent, 0)
	return has, kinds
}

// compileKeys moves the string and CIDR keys of bt, which becomes
// transition ti (t), to its small key list or to entries of the strTable
// (or, for prefixes and suffixes of too many lengths, to tries of x), and
// sets the bits of t they need.
func (a *automaton) compileKeys(bt *btrans, t *trans, ti int32, x *valueExt, perm []int32, entries []strEntry) []strEntry {
	remap := func(l []int32) []int32 {
		out := make([]int32, len(l))
		for i, s := range l {
			out[i] = perm[s]
		}
		return out
	}
	str := func(bit uint16) {
		t.has |= bit
		t.kinds |= 1 << evString
	}
	if bt.small() {
		t.k0 = int32(len(a.small))
		for _, k := range bt.keys {
			kind := int(k[0])
			e := keyEnt{n: int32(len(k) - 1), kind: uint8(kind)}
			if int(e.n) <= len(e.inl) {
				copy(e.inl[:], k[1:])
			} else {
				e.off = int32(len(a.smallBytes))
				a.smallBytes = append(a.smallBytes, k[1:]...)
			}
			a.strs.lists, e.to = appendList(a.strs.lists, remap(bt.tab[kind][k[1:]]))
			a.small = append(a.small, e)
		}
		t.kn = uint8(len(a.small) - int(t.k0))
		str(hasSmall)
		bt.tab = [nKeyKinds]map[string][]int32{}
	}
	for kind := kPrefix; kind <= kSuffixF; kind++ {
		if len(bt.tab[kind]) == 0 {
			continue
		}
		var lens []int32
		for k := range bt.tab[kind] {
			lens = addState(lens, int32(len(k)))
		}
		if len(lens) <= maxAffixLens {
			slices.Sort(lens)
			x.affix[kind-kPrefix] = lens
			suffix := kind == kSuffix || kind == kSuffixF
			for k := range bt.tab[kind] {
				x.sigs[kind-kPrefix].add(affixSig([]byte(k), suffix))
			}
			continue
		}
		reverse := kind == kSuffix || kind == kSuffixF
		var root *trieNode
		for _, k := range bt.keys {
			if int(k[0]) == kind {
				for _, s := range bt.tab[kind][k[1:]] {
					root = trieAdd(root, k[1:], reverse, perm[s])
				}
			}
		}
		root.compress()
		x.tries[kind-kPrefix] = root
		bt.tab[kind] = nil
	}
	for _, k := range bt.keys {
		kind := int(k[0])
		if l, ok := bt.tab[kind][k[1:]]; ok {
			entries = append(entries, strEntry{key: strKey(ti, kind), s: k[1:], to: remap(l)})
		}
		if kind == kCIDR && bt.tab[kCIDR] != nil {
			bits := int32(k[len(k)-1])
			if len(k) == 1+4+1 {
				x.cidr4 = addState(x.cidr4, bits)
			} else {
				x.cidr6 = addState(x.cidr6, bits)
			}
		}
	}
	if len(bt.tab[kExact]) > 0 {
		str(hasStr)
	}
	if len(bt.tab[kFold]) > 0 {
		str(hasFold | hasFoldAny)
	}
	if x.affix[0] != nil || x.tries[0] != nil {
		str(hasPrefix)
	}
	if x.affix[1] != nil || x.tries[1] != nil {
		str(hasSuffix)
	}
	if x.affix[2] != nil || x.tries[2] != nil || x.affix[3] != nil || x.tries[3] != nil {
		str(hasFoldAny)
	}
	if len(bt.tab[kCIDR]) > 0 {
		str(hasCIDR)
	}
	return entries
}

// small reports whether the string and CIDR keys of t go to a small key
// list.
func (t *btrans) small() bool {
	n := 0
	for kind := kExact; kind <= kCIDR; kind++ {
		n += len(t.tab[kind])
	}
	return n > 0 && n <= smallKeys
}

// empty reports whether x holds nothing a lookup needs.
func (x *valueExt) empty() bool {
	for i := range x.affix {
		if x.affix[i] != nil || x.tries[i] != nil {
			return false
		}
	}
	return x.cidr4 == nil && x.cidr6 == nil && x.num == nil && x.tru == nil && x.fls == nil &&
		x.null == nil && x.any == nil && x.absent == nil && x.numeric.ranges == nil && x.linear == nil
}

// collect appends to sc.next, without duplicates, the states value f leads
// to through transition ti.
func (sc *scratch) collect(t *trans, ti int32, f *evField) {
	has := t.has
	if f.kind == evString {
		if has&hasSmall != 0 {
			sc.scanKeys(t, f)
		}
		if has&hasStr != 0 {
			sc.addTo(sc.a.strs.get(strKey(ti, kExact), sc.hash(f), f.val))
		}
	}
	if has&^(hasStr|hasAbsent|hasSmall) == 0 {
		return
	}
	a := sc.a
	var x *valueExt
	if t.x >= 0 {
		x = &a.exts[t.x]
	}
	if has&hasAny != 0 {
		sc.addAll(x.any)
	}
	switch f.kind {
	case evString:
		if has&hasPrefix != 0 {
			sc.affixes(x, ti, kPrefix, f)
		}
		if has&hasSuffix != 0 {
			sc.affixes(x, ti, kSuffix, f)
		}
		if has&hasFoldAny != 0 {
			if has&hasFold != 0 {
				sc.addTo(sc.a.strs.get(strKey(ti, kFold), sc.foldHash(f), sc.folded(f)))
			}
			if x != nil {
				sc.affixes(x, ti, kPrefixF, f)
				sc.affixes(x, ti, kSuffixF, f)
			}
		}
		if has&hasCIDR != 0 {
			// A zoned address is in no block, as netip.Prefix.Contains
			// (the reference) has it.
			if ip, ok := parseIP(f.val); ok && ip.Zone() == "" {
				sc.cidrs(x, ti, ip)
			}
		}
	case evNumber:
		if f.numOK {
			if has&hasNum != 0 && x.num != nil {
				sc.addAll(x.num[f.num])
			}
			if has&hasNumeric != 0 {
				for i := t.r0; i < t.r1; i++ {
					if r := &a.ranges[i]; r.contains(f.num) {
						sc.add(r.to)
					}
				}
			}
			if has&hasNumTab != 0 {
				x.numeric.collect(sc, f.num)
			}
		}
	case evTrue:
		if has&hasNum != 0 {
			sc.addAll(x.tru)
		}
	case evFalse:
		if has&hasNum != 0 {
			sc.addAll(x.fls)
		}
	case evNull:
		if has&hasNum != 0 {
			sc.addAll(x.null)
		}
	}
	if has&hasLinear != 0 {
		for i := t.l0; i < t.l1; i++ {
			if l := &a.linear[i]; l.a.match(f, sc) {
				sc.add(l.to)
			}
		}
	}
}

// scanKeys collects the states of the small key list of t that string
// field f matches.
func (sc *scratch) scanKeys(t *trans, f *evField) {
	a := sc.a
	var ipc ipCache
	for i := t.k0; i < t.k0+int32(t.kn); i++ {
		if e := &a.small[i]; sc.keyMatch(e, f, &ipc) {
			sc.addTo(e.to)
		}
	}
}

// ipCache holds the address a string value parses as, once parsed.
type ipCache struct {
	ip       netip.Addr
	done, ok bool
}

// keyMatch reports whether string field f matches key e of a small key
// list.
func (sc *scratch) keyMatch(e *keyEnt, f *evField, ipc *ipCache) bool {
	v := f.val
	var k []byte
	if int(e.n) <= len(e.inl) {
		k = e.inl[:e.n]
	} else {
		k = sc.a.smallBytes[e.off : e.off+e.n]
	}
	switch e.kind {
	case kCIDR:
		if len(k) == 4+1 && !ipv4MayStartWith(v, k[:min(k[4]/8, 3)]) {
			return false
		}
		if !ipc.done {
			ipc.ip, ipc.ok = parseIP(v)
			ipc.ok = ipc.ok && ipc.ip.Zone() == "" // as in collect
			ipc.done = true
		}
		return ipc.ok && cidrKeyContains(k, ipc.ip)
	case kExact:
		return string(v) == string(k)
	case kPrefix:
		return len(v) >= len(k) && string(v[:len(k)]) == string(k)
	case kSuffix:
		return len(v) >= len(k) && string(v[len(v)-len(k):]) == string(k)
	}
	// The part of the value a folded key is compared with is folded byte
	// by byte when it is ASCII (a non-ASCII rune never folds into or out
	// of it); otherwise the whole value is folded once.
	var part []byte
	switch {
	case e.kind == kFold:
		part = v
	case len(v) < len(k):
	case e.kind == kPrefixF:
		part = v[:len(k)]
	default:
		part = v[len(v)-len(k):]
	}
	if part != nil && isASCII(part) {
		return len(part) == len(k) && asciiFoldEq(part, k)
	}
	fv := sc.folded(f)
	switch e.kind {
	case kFold:
		return string(fv) == string(k)
	case kPrefixF:
		return len(fv) >= len(k) && string(fv[:len(k)]) == string(k)
	case kSuffixF:
		return len(fv) >= len(k) && string(fv[len(fv)-len(k):]) == string(k)
	}
	return false
}

// isASCII reports whether b holds only ASCII bytes.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiFoldEq reports whether the case fold of ASCII bytes b is the folded
// key k (of the same length).
func asciiFoldEq(b, k []byte) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != k[i] {
			return false
		}
	}
	return true
}

// ipv4MayStartWith reports whether v may be an address whose first IPv4
// bytes are octets: false only when v cannot be an IPv6 address (no ':')
// and does not start with each octet in decimal followed by a dot, as
// every IPv4 address that parseIP accepts (no leading zeros) with those
// first bytes does. It spares parsing addresses that a CIDR block of a
// small key list cannot contain.
func ipv4MayStartWith(v []byte, octets []byte) bool {
	if len(octets) == 0 || bytes.IndexByte(v, ':') >= 0 {
		return true
	}
	var d [16]byte
	b := d[:0]
	for _, o := range octets {
		b = strconv.AppendUint(b, uint64(o), 10)
		b = append(b, '.')
	}
	return len(v) >= len(b) && string(v[:len(b)]) == string(b)
}

// affixes collects the states of the prefixes (or suffixes, by kind) of
// string field f that transition ti indexes.
func (sc *scratch) affixes(x *valueExt, ti int32, kind int, f *evField) {
	lens, trie := x.affix[kind-kPrefix], x.tries[kind-kPrefix]
	if lens == nil && trie == nil {
		return
	}
	fold := kind == kPrefixF || kind == kSuffixF
	suffix := kind == kSuffix || kind == kSuffixF
	v := f.val
	if fold {
		v = sc.folded(f)
	}
	if trie != nil {
		trie.walk(sc, v, suffix)
		return
	}
	st := &sc.a.strs
	key := strKey(ti, kind)
	sigs := &x.sigs[kind-kPrefix]
	for _, n := range lens {
		if int(n) > len(v) {
			return
		}
		k := v
		if suffix {
			k = v[len(v)-int(n):]
		} else {
			k = v[:n]
		}
		if !sigs.has(affixSig(k, suffix)) {
			continue
		}
		var h uint64
		switch {
		case int(n) < len(v):
			h = maphash.Bytes(st.seed, k)
		case fold:
			h = sc.foldHash(f)
		default:
			h = sc.hash(f)
		}
		sc.addTo(st.get(key, h, k))
	}
}

// cidrs collects the states of the CIDR blocks of transition ti that
// contain ip.
func (sc *scratch) cidrs(x *valueExt, ti int32, ip netip.Addr) {
	lens := x.cidr4
	if ip.Is6() {
		lens = x.cidr6
	}
	st := &sc.a.strs
	key := strKey(ti, kCIDR)
	var buf [17]byte
	for _, bits := range lens {
		p, err := ip.Prefix(int(bits))
		if err != nil {
			continue
		}
		k := appendCIDRKey(buf[:0], p)
		sc.addTo(st.get(key, maphash.Bytes(st.seed, k), k))
	}
}

// strTable maps (transition, kind, key) to the states it leads to: one
// open-addressed table for the whole automaton, so that a lookup costs one
// probe of a 64-byte slot (one cache line) holding the key bytes when they
// fit; longer keys are stored in slot order in keys.
type strTable struct {
	seed  maphash.Seed
	slots []strSlot
	shift uint8
	keys  []byte
	lists []int32 // lists[i] = n, then n state ids
}

type strSlot struct {
	h   uint64 // hash of the key string
	key int32  // strKey; 0 = empty slot
	off int32  // key bytes: inl[:n] if n <= len(inl), else keys[off : off+n]
	n   int32
	to  int32 // a state id, or ^i for the list at lists[i]
	inl [40]byte
}

// noState is the result of a lookup that leads nowhere.
const noState = math.MinInt32

func strKey(ti int32, kind int) int32 { return 1 + ti*nKeyKinds + int32(kind) }

func (st *strTable) slot(key int32, h uint64) int {
	return int(((h ^ uint64(key)*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9) >> st.shift)
}

func (st *strTable) get(key int32, h uint64, v []byte) int32 {
	mask := len(st.slots) - 1
	for i := st.slot(key, h); ; i = (i + 1) & mask {
		e := &st.slots[i]
		if e.key == key && e.h == h && int(e.n) == len(v) {
			var k []byte
			if int(e.n) <= len(e.inl) {
				k = e.inl[:e.n]
			} else {
				k = st.keys[e.off : e.off+e.n]
			}
			if string(k) == string(v) {
				return e.to
			}
		}
		if e.key == 0 {
			return noState
		}
	}
}

type strEntry struct {
	key int32
	s   string
	to  []int32
}

// appendList stores a list of ids (states or rules) for an int32 reference:
// the id itself when there is one, else ^i for lists[i] = n, then the ids.
func appendList(lists []int32, ids []int32) ([]int32, int32) {
	switch len(ids) {
	case 0:
		return lists, noState
	case 1:
		return lists, ids[0]
	}
	ref := ^int32(len(lists))
	lists = append(lists, int32(len(ids)))
	return append(lists, ids...), ref
}

// listAt returns the list of a reference ^i made by appendList.
func listAt(lists []int32, ref int32) []int32 {
	l := lists[^ref:]
	return l[1 : 1+l[0]]
}

// build fills the table with entries whose state ids are already final.
func (st *strTable) build(entries []strEntry) {
	st.seed = maphash.MakeSeed()
	size, shift := 8, uint8(61)
	for size < 2*len(entries) {
		size *= 2
		shift--
	}
	st.slots = make([]strSlot, size)
	st.shift = shift
	strs := make([]string, size)
	mask := size - 1
	for _, e := range entries {
		h := maphash.String(st.seed, e.s)
		i := st.slot(e.key, h)
		for st.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		var to int32
		st.lists, to = appendList(st.lists, e.to)
		st.slots[i] = strSlot{h: h, key: e.key, n: int32(len(e.s)), to: to}
		strs[i] = e.s
	}
	for i := range st.slots {
		e := &st.slots[i]
		switch {
		case e.key == 0:
		case int(e.n) <= len(e.inl):
			copy(e.inl[:], strs[i])
		default:
			e.off = int32(len(st.keys))
			st.keys = append(st.keys, strs[i]...)
		}
	}
}

// hash returns the hash of a string field's value, computing it once.
func (sc *scratch) hash(f *evField) uint64 {
	if !f.hashed {
		f.h = maphash.Bytes(sc.a.strs.seed, f.val)
		f.hashed = true
	}
	return f.h
}

// foldHash returns the hash of a string field's case fold.
func (sc *scratch) foldHash(f *evField) uint64 {
	if !f.fhashed {
		f.fh = maphash.Bytes(sc.a.strs.seed, sc.folded(f))
		f.fhashed = true
	}
	return f.fh
}

// addTo adds the result of a strTable lookup.
func (sc *scratch) addTo(to int32) {
	switch {
	case to >= 0:
		sc.add(to)
	case to != noState:
		sc.addAll(listAt(sc.a.strs.lists, to))
	}
}

// trieNode is a byte trie of prefixes (or reversed suffixes). After
// building, chains of nodes with one child and no states are folded into
// skip, the bytes that must follow the key byte leading to the node, so a
// long shared prefix costs one comparison instead of a lookup per byte.
type trieNode struct {
	keys   []byte
	kids   []*trieNode
	skip   string // in walk order (reversed for suffix tries)
	states []int32
}

// appendLists appends the state lists of the trie to lists.
func (n *trieNode) appendLists(lists [][]int32) [][]int32 {
	if n == nil {
		return lists
	}
	lists = append(lists, n.states)
	for _, k := range n.kids {
		lists = k.appendLists(lists)
	}
	return lists
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

func trieAdd(root *trieNode, s string, reverse bool, to int32) *trieNode {
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
	ranges []numTo
	bounds []float64 // sorted distinct boundaries
	slots  [][]int32 // 2*len(bounds)+1 slots
}

// numTo is a range and the state it leads to.
type numTo struct {
	numRange
	to int32
}

func (ni *numIndex) add(r numRange, to int32) {
	ni.ranges = append(ni.ranges, numTo{r, to})
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
	slots := make([][]int32, 2*len(bounds)+1)
	for i, lh := range lohi {
		for s := lh[0]; s <= lh[1]; s++ {
			slots[s] = addState(slots[s], ni.ranges[i].to)
		}
	}
	ni.bounds, ni.slots = bounds, slots
}

func (ni *numIndex) collect(sc *scratch, x float64) {
	if ni.slots == nil {
		for i := range ni.ranges {
			if r := &ni.ranges[i]; r.contains(x) {
				sc.add(r.to)
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

// --- scratch helpers used while walking ---

func (sc *scratch) add(s int32) {
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
				sc.stateGen[x] = sc.sgen
			}
		}
		return
	}
	if sc.stateGen[s] != sc.sgen {
		sc.stateGen[s] = sc.sgen
		sc.next = append(sc.next, s)
	}
}

func (sc *scratch) addAll(list []int32) {
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

// hit records that the event matches rule r. Small answers (the common
// case) are de-duplicated by a scan; past 16 rules the per-rule stamps
// take over.
func (sc *scratch) hit(r int32) {
	if n := len(sc.hits); n < 16 {
		for _, x := range sc.hits {
			if x == r {
				return
			}
		}
		sc.hits = append(sc.hits, r)
		if n == 15 {
			for _, x := range sc.hits {
				sc.ruleGen[x] = sc.rgen
			}
		}
		return
	}
	if sc.ruleGen[r] != sc.rgen {
		sc.ruleGen[r] = sc.rgen
		sc.hits = append(sc.hits, r)
	}
}

// accept records the rules a state accepts (its acc).
func (sc *scratch) accept(r int32) {
	if r >= 0 {
		sc.hit(r)
	} else if r != noState {
		for _, r := range listAt(sc.a.accepts, r) {
			sc.hit(r)
		}
	}
}

func (sc *scratch) walk(s int32) {
	sc.steps++
	if sc.steps > maxSteps {
		panic(walkAbort{})
	}
	a := sc.a
	st := &a.states[s]
	sc.accept(st.acc)
	// The event's fields do not change during the walk: locals spare
	// reloading them through sc at every transition.
	head, fields, trans := sc.head, sc.fields, a.trans
	for ti := st.trans0; ti < st.trans1; ti++ {
		t := &trans[ti]
		for fi := head[t.path]; fi >= 0; fi = fields[fi].next {
			f := &fields[fi]
			if t.kinds&(1<<f.kind) == 0 || f.trailN > 0 && !sc.compatible(f) {
				continue
			}
			if to, ok := sc.single(t, ti, f); ok {
				// One key or range leading to one state: no set to
				// collect.
				if to != noState {
					sc.steps++
					sc.walkFrom(to, f, fi)
				}
				continue
			}
			mark := len(sc.next)
			sc.newCollect()
			sc.collect(t, ti, f)
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
		if t.has&hasAbsent != 0 && sc.absent(t.path) {
			for _, n := range a.exts[t.x].absent {
				sc.walk(n)
			}
		}
	}
}

// single evaluates, without collecting a set, the transitions where a value
// leads to at most one state: one string key or one numeric range (most
// transitions of a large rule set, where each rule adds its own
// condition), or exact strings whose hit is one state. ok reports that t
// and f are such a case, to the state f leads to (noState if none).
func (sc *scratch) single(t *trans, ti int32, f *evField) (to int32, ok bool) {
	switch {
	case t.has == hasStr:
		to := sc.a.strs.get(strKey(ti, kExact), sc.hash(f), f.val)
		return to, to >= 0 || to == noState
	case t.has == hasSmall && t.kn == 1:
		e := &sc.a.small[t.k0]
		if e.to < 0 {
			return 0, false
		}
		var ipc ipCache
		if sc.keyMatch(e, f, &ipc) {
			return e.to, true
		}
		return noState, true
	case t.has == hasNumeric && t.r1 == t.r0+1:
		if r := &sc.a.ranges[t.r0]; f.numOK && r.contains(f.num) {
			return r.to, true
		}
		return noState, true
	}
	return 0, false
}

// walkFrom walks from state to, reached by field fi (f).
func (sc *scratch) walkFrom(to int32, f *evField, fi int32) {
	if st := &sc.a.states[to]; st.trans0 == st.trans1 {
		// A state without transitions (where most rules end) only
		// accepts.
		sc.steps++
		if sc.steps > maxSteps {
			panic(walkAbort{})
		}
		sc.accept(st.acc)
		return
	}
	pushed := f.trailN > 0
	if pushed {
		sc.used = append(sc.used, fi)
	}
	sc.walk(to)
	if pushed {
		sc.used = sc.used[:len(sc.used)-1]
	}
}

// automaton is the compiled form of all rules of a bus.
type automaton struct {
	states     []state // states[0] is the root
	trans      []trans
	accepts    []int32
	strs       strTable
	exts       []valueExt
	linear     []linearAlt // linear alternatives of the transitions
	ranges     []numTo     // numeric ranges of the transitions with few
	small      []keyEnt    // small key lists of the transitions
	smallBytes []byte

	root    *bstate         // build time only
	intern  map[string]*alt // build time only: one copy of each linear alternative
	nstates int
	paths   *pathNode
	npaths  int
	names   []string // dotted path per path id
}

func newAutomaton() *automaton {
	a := &automaton{paths: newPathNode(), intern: map[string]*alt{}}
	a.root = a.newState()
	return a
}

func (a *automaton) newState() *bstate {
	s := &bstate{id: int32(a.nstates)}
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
			s.tmap = map[int32]*btrans{}
		}
		t := s.tmap[pid]
		if t == nil {
			t = &btrans{path: pid, specs: map[string]*bstate{}}
			s.tmap[pid] = t
			s.trans = append(s.trans, t)
		}
		next := t.specs[c.spec.key]
		if next == nil {
			next = a.newState()
			t.specs[c.spec.key] = next
			t.kids = append(t.kids, next)
			for i := range c.spec.alts {
				t.add(&c.spec.alts[i], next.id, a.intern)
			}
			if c.spec.absent {
				t.x.absent = append(t.x.absent, next.id)
				t.xused = true
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

// finish compiles the build-time graph into the flat arrays. States are
// numbered depth first, so that a state, the states it leads to and their
// transitions sit next to each other in memory.
func (a *automaton) finish() {
	perm := make([]int32, a.nstates)
	order := make([]*bstate, 0, a.nstates)
	ntrans := 0
	var number func(s *bstate)
	number = func(s *bstate) {
		perm[s.id] = int32(len(order))
		order = append(order, s)
		ntrans += len(s.trans)
		for _, t := range s.trans {
			for _, k := range t.kids {
				number(k)
			}
		}
	}
	number(a.root)
	a.states = make([]state, len(order))
	a.trans = make([]trans, 0, ntrans)
	var entries []strEntry
	for i, s := range order {
		st := &a.states[i]
		a.accepts, st.acc = appendList(a.accepts, s.accepts)
		st.trans0 = int32(len(a.trans))
		for _, bt := range s.trans {
			ti := int32(len(a.trans))
			t := trans{path: bt.path, x: -1}
			x := bt.x
			x.remap(perm)
			t.has, t.kinds = x.finish()
			entries = a.compileKeys(bt, &t, ti, &x, perm, entries)
			t.l0 = int32(len(a.linear))
			a.linear = append(a.linear, x.linear...)
			t.l1 = int32(len(a.linear))
			x.linear = nil
			if t.has&hasNumeric != 0 {
				t.r0 = int32(len(a.ranges))
				a.ranges = append(a.ranges, x.numeric.ranges...)
				t.r1 = int32(len(a.ranges))
				x.numeric.ranges = nil
			}
			if !x.empty() {
				t.x = int32(len(a.exts))
				a.exts = append(a.exts, x)
			}
			a.trans = append(a.trans, t)
		}
		st.trans1 = int32(len(a.trans))
	}
	a.strs.build(entries)
	a.root, a.intern = nil, nil
}
