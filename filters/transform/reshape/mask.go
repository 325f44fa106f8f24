package reshape

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"unicode/utf8"
)

// Mask actions.
const (
	ActionRedact  = "redact"
	ActionRemove  = "remove"
	ActionHash    = "hash"
	ActionPartial = "partial"
)

// Actions lists the mask actions.
var Actions = []string{ActionRedact, ActionRemove, ActionHash, ActionPartial}

// DefaultReplacement is what redact writes when no replacement is given.
const DefaultReplacement = "REDACTED"

// MinHashKeyBytes is the shortest key the hash action takes.
const MinHashKeyBytes = 16

type mask struct {
	path        *Path
	action      string
	replacement []byte // redact: the JSON string written instead
	key         []byte // hash: the HMAC key
	first, last int    // partial: characters kept at each end
}

// edit replaces b[start:end] with repl.
type edit struct {
	start, end int
	repl       []byte
}

// apply returns the event with the mask applied. It returns ev itself when
// the path reaches nothing.
func (m *mask) apply(ev []byte) ([]byte, error) {
	var hits []hit
	if err := m.path.walk(ev, 0, func(h hit) error {
		hits = append(hits, h)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(hits) == 0 {
		return ev, nil
	}
	var edits []edit
	var err error
	if m.action == ActionRemove {
		edits, err = removals(ev, hits)
	} else {
		edits, err = m.replacements(ev, hits)
	}
	if err != nil {
		return nil, err
	}
	return splice(ev, edits), nil
}

func (m *mask) replacements(ev []byte, hits []hit) ([]edit, error) {
	slices.SortFunc(hits, func(a, b hit) int { return a.start - b.start })
	edits := make([]edit, 0, len(hits))
	end := -1
	for _, h := range hits {
		if h.start < end {
			continue // inside a value already replaced (a .. path)
		}
		var err error
		if end, err = h.valueEnd(ev); err != nil {
			return nil, err
		}
		repl, err := m.replace(ev[h.start:h.end])
		if err != nil {
			return nil, err
		}
		edits = append(edits, edit{start: h.start, end: h.end, repl: repl})
	}
	return edits, nil
}

// replace returns the JSON written instead of the value v.
func (m *mask) replace(v []byte) ([]byte, error) {
	switch m.action {
	case ActionRedact:
		return m.replacement, nil
	case ActionHash:
		text, err := valueText(v)
		if err != nil {
			return nil, err
		}
		h := hmac.New(sha256.New, m.key)
		h.Write(text)
		var sum [sha256.Size]byte
		out := make([]byte, 0, 2+2*sha256.Size)
		out = append(out, '"')
		out = hex.AppendEncode(out, h.Sum(sum[:0]))
		return append(out, '"'), nil
	default: // partial
		if v[0] != '"' && numberEnd(v, 0) != len(v) {
			return m.replacement, nil // objects, arrays, booleans, null: nothing to keep
		}
		text, err := valueText(v)
		if err != nil {
			return nil, err
		}
		return appendString(nil, partial(string(text), m.first, m.last)), nil
	}
}

// valueText is what hash and partial work on: a string's text, or any other
// value's compact JSON (a number's digits as written).
func valueText(v []byte) ([]byte, error) {
	if v[0] == '"' {
		if _, err := checkString(v, 0); err != nil {
			return nil, err
		}
		return unescape(make([]byte, 0, len(v)), v[1:len(v)-1]), nil
	}
	out, _, err := appendCompact(nil, v, 0)
	return out, err
}

// partial keeps the first and last characters of s and stars the rest:
// partial("13812345678", 3, 4) is "138****5678". A value too short to hide
// anything is starred whole.
func partial(s string, first, last int) string {
	n := utf8.RuneCountInString(s)
	if n <= first+last {
		return stars(n)
	}
	out := make([]byte, 0, len(s))
	i := 0
	for _, r := range s {
		switch {
		case i < first || i >= n-last:
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, '*')
		}
		i++
	}
	return string(out)
}

func stars(n int) string {
	out := make([]byte, n)
	for i := range out {
		out[i] = '*'
	}
	return string(out)
}

// removals turns the members to remove into edits that keep each object and
// array valid: a member and the comma after it, or, for the last kept
// member's followers, the comma before them.
func removals(ev []byte, hits []hit) ([]edit, error) {
	byContainer := map[int]map[int]bool{} // container -> member starts
	for _, h := range hits {
		if h.container < 0 {
			continue // the root: refused when compiling
		}
		if byContainer[h.container] == nil {
			byContainer[h.container] = map[int]bool{}
		}
		byContainer[h.container][h.member] = true
	}
	var edits []edit
	for c, gone := range byContainer {
		var ms []member
		it := newIterator(ev, c)
		var m member
		for it.next(&m) {
			ms = append(ms, m)
		}
		if it.err != nil {
			return nil, it.err
		}
		lastKept := -1
		for i := range ms {
			if !gone[ms[i].start()] {
				lastKept = i
			}
		}
		for i := range ms {
			if !gone[ms[i].start()] {
				continue
			}
			if i < lastKept {
				edits = append(edits, edit{start: ms[i].start(), end: ms[i+1].start()})
			} else if lastKept >= 0 {
				edits = append(edits, edit{start: ms[lastKept].valEnd, end: ms[i].valEnd})
			} else {
				edits = append(edits, edit{start: ms[0].start(), end: ms[i].valEnd})
			}
		}
	}
	// Merge overlapping spans: the tail of one container, and values nested
	// in a removed one (a .. path).
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	out := edits[:0]
	for _, e := range edits {
		if n := len(out); n > 0 && e.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, e.end)
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// splice applies sorted, non-overlapping edits.
func splice(ev []byte, edits []edit) []byte {
	size := len(ev)
	for _, e := range edits {
		size += len(e.repl) - (e.end - e.start)
	}
	out := make([]byte, 0, size)
	at := 0
	for _, e := range edits {
		out = append(out, ev[at:e.start]...)
		out = append(out, e.repl...)
		at = e.end
	}
	return append(out, ev[at:]...)
}
