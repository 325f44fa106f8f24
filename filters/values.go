package filters

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// This file holds the value-level semantics of each operator: how one
// alternative of a leaf array judges one leaf value of the event. The
// automaton indexes most alternatives (hash maps, tries, interval tables)
// but falls back on these functions for the rest, and Explain uses them
// directly, so they are the reference the automaton is tested against.

// foldRune maps a rune to the representative of its Unicode simple case
// folding orbit: the smallest rune of the orbit, with ASCII letters in lower
// case. Two strings are equal ignoring case when their folds are equal.
func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < m {
			m = f
		}
	}
	if 'A' <= m && m <= 'Z' {
		m += 'a' - 'A'
	}
	return m
}

// appendFold appends the case fold of s to dst.
func appendFold(dst, s []byte) []byte {
	// ASCII runs are folded in place in the grown slice; the first
	// non-ASCII byte hands over to the rune loop.
	dst = slices.Grow(dst, len(s))
	out := dst[len(dst) : len(dst)+len(s)]
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			break
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	dst = dst[:len(dst)+i]
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		i += n
		dst = utf8.AppendRune(dst, foldRune(r))
	}
	return dst
}

func foldString(s string) string { return string(appendFold(nil, []byte(s))) }

// wildcard is a compiled wildcard pattern: literal segments separated by
// '*' (escaped stars and backslashes are already literal).
type wildcard struct {
	segs []string
}

var (
	errWildcardStars  = errors.New(`consecutive "**" are not allowed in a wildcard; one "*" already matches any run of characters`)
	errWildcardEscape = errors.New(`in a wildcard a backslash must be followed by "*" or "\" (write "\\*" for a literal star, "\\\\" for a backslash)`)
)

func compileWildcard(p string) (*wildcard, error) {
	var segs []string
	var cur []byte
	prevStar := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '\\':
			if i+1 >= len(p) || (p[i+1] != '*' && p[i+1] != '\\') {
				return nil, errWildcardEscape
			}
			cur = append(cur, p[i+1])
			i++
			prevStar = false
		case '*':
			if prevStar {
				return nil, errWildcardStars
			}
			segs = append(segs, string(cur))
			cur = cur[:0]
			prevStar = true
		default:
			cur = append(cur, c)
			prevStar = false
		}
	}
	segs = append(segs, string(cur))
	return &wildcard{segs: segs}, nil
}

// match reports whether v matches. Segments are found greedily left to
// right, which is exact for patterns whose only metacharacter is '*'; the
// cost is linear in len(v) times the number of segments.
func (w *wildcard) match(v []byte) bool {
	s := w.segs
	if len(s) == 1 {
		return string(v) == s[0]
	}
	first, last := s[0], s[len(s)-1]
	if len(v) < len(first)+len(last) || string(v[:len(first)]) != first || string(v[len(v)-len(last):]) != last {
		return false
	}
	mid := v[len(first) : len(v)-len(last)]
	for _, seg := range s[1 : len(s)-1] {
		i := bytes.Index(mid, []byte(seg))
		if i < 0 {
			return false
		}
		mid = mid[i+len(seg):]
	}
	return true
}

// parseIP parses an event value as an IP address without allocating for
// values that are obviously not addresses.
func parseIP(v []byte) (netip.Addr, bool) {
	if len(v) < 2 || len(v) > 64 {
		return netip.Addr{}, false
	}
	for _, c := range v {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '.' || c == ':' || c == '%') {
			if c == '%' || bytes.IndexByte(v, '%') < 0 {
				return netip.Addr{}, false
			}
			break // zone names may hold other characters
		}
	}
	a, err := netip.ParseAddr(unsafe.String(&v[0], len(v)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// match reports whether alternative a accepts event value f. It is the
// reference semantics of every operator.
func (a *alt) match(f *evField, sc *scratch) bool {
	switch a.op {
	case opString:
		return f.kind == evString && string(f.val) == a.s
	case opNumber:
		return f.kind == evNumber && f.numOK && f.num == a.num
	case opTrue:
		return f.kind == evTrue
	case opFalse:
		return f.kind == evFalse
	case opNull:
		return f.kind == evNull
	case opExists:
		return true
	case opAbsent:
		return false
	case opNumeric:
		return f.kind == evNumber && f.numOK && a.rng.contains(f.num)
	case opAnythingBut:
		return !a.anti.excludes(f, sc)
	}
	if f.kind != evString {
		return false
	}
	switch a.op {
	case opPrefix:
		return bytes.HasPrefix(f.val, []byte(a.s))
	case opSuffix:
		return bytes.HasSuffix(f.val, []byte(a.s))
	case opPrefixFold:
		return bytes.HasPrefix(sc.folded(f), []byte(a.s))
	case opSuffixFold:
		return bytes.HasSuffix(sc.folded(f), []byte(a.s))
	case opFold:
		return string(sc.folded(f)) == a.s
	case opWildcard:
		return a.wc.match(f.val)
	case opContains:
		return bytes.Contains(f.val, []byte(a.s))
	case opRegex:
		return a.re.Match(f.val)
	case opCIDR:
		ip, ok := parseIP(f.val)
		return ok && a.pfx.Contains(ip)
	}
	return false
}

// excludes reports whether anything-but excludes the value. anything-but
// accepts every leaf value (of any type) that it does not exclude; the
// string forms exclude only strings and the number forms only numbers.
func (as *antiSpec) excludes(f *evField, sc *scratch) bool {
	if as.kind == opNumber {
		if f.kind != evNumber || !f.numOK {
			return false
		}
		for _, n := range as.nums {
			if n == f.num {
				return true
			}
		}
		return false
	}
	if f.kind != evString {
		return false
	}
	switch as.kind {
	case opString:
		for _, s := range as.strs {
			if string(f.val) == s {
				return true
			}
		}
	case opPrefix:
		return bytes.HasPrefix(f.val, []byte(as.strs[0]))
	case opSuffix:
		return bytes.HasSuffix(f.val, []byte(as.strs[0]))
	case opFold:
		fv := sc.folded(f)
		for _, s := range as.strs {
			if string(fv) == s {
				return true
			}
		}
	case opWildcard:
		for _, w := range as.wcs {
			if w.match(f.val) {
				return true
			}
		}
	}
	return false
}
