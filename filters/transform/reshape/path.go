package reshape

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ohler55/ojg/jp"
)

// Paths are parsed by ohler55/ojg's jp package, then run by the small
// evaluator below on the event's bytes: decoding a 1 KiB event to run one
// path would cost ten times the whole template budget, and reading values in
// place keeps numbers exactly as written.
//
// Supported, as in EventBridge: $, .name, ['name'], [n] (negative counts
// from the end), .* and [*]; and ..name (every depth), for masks. Filters,
// slices and unions are rejected when the config loads.

type stepKind uint8

const (
	stepChild stepKind = iota
	stepIndex
	stepWild
	stepDescent
)

type step struct {
	kind  stepKind
	name  string
	index int
}

// Path is a compiled JSONPath.
type Path struct {
	src   string
	steps []step
	// multi is set when the path can reach more than one value (a wildcard
	// or ..): its value is then the array of every value reached.
	multi bool
}

// String returns the path as written.
func (p *Path) String() string { return p.src }

// pathError is a path that does not compile; Offset counts bytes from 0 in
// the path, -1 when unknown.
type pathError struct {
	Offset int
	Msg    string
}

func (e *pathError) Error() string { return e.Msg }

var ojgAt = regexp.MustCompile(`^(.*) at (\d+) in .*$`)

// ParsePath compiles a JSONPath for transforms.
func ParsePath(src string) (*Path, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &pathError{Offset: -1, Msg: "the path is empty (write a JSONPath such as $.data.orderId)"}
	}
	if src[0] != '$' {
		return nil, &pathError{Offset: 0, Msg: fmt.Sprintf("a path starts with $ (the event), as in %q", "$."+strings.TrimPrefix(src, "."))}
	}
	rewritten, shifted := bracketDashes(src)
	x, err := jp.ParseString(rewritten)
	if err != nil {
		msg, off := err.Error(), -1
		if m := ojgAt.FindStringSubmatch(msg); m != nil {
			msg = m[1]
			if !shifted {
				off, _ = strconv.Atoi(m[2])
				off-- // ojg counts from 1
			}
		}
		return nil, &pathError{Offset: off, Msg: "invalid JSONPath: " + msg}
	}
	p := &Path{src: src}
	for i, f := range x {
		switch f := f.(type) {
		case jp.Root:
			if i != 0 {
				return nil, &pathError{Offset: -1, Msg: "invalid JSONPath: $ appears inside the path"}
			}
			continue
		case jp.Child:
			p.steps = append(p.steps, step{kind: stepChild, name: string(f)})
		case jp.Nth:
			p.steps = append(p.steps, step{kind: stepIndex, index: int(f)})
		case jp.Wildcard:
			p.steps = append(p.steps, step{kind: stepWild})
			p.multi = true
		case jp.Descent:
			if i == len(x)-1 {
				return nil, &pathError{Offset: len(src) - 1, Msg: "invalid JSONPath: .. must be followed by a name, [n] or *"}
			}
			p.steps = append(p.steps, step{kind: stepDescent})
			p.multi = true
		case jp.Bracket:
			continue
		default:
			what := "this part"
			switch f.(type) {
			case *jp.Filter:
				what = "filters ([?(...)])"
			case jp.Slice:
				what = "slices ([a:b])"
			case jp.Union:
				what = "unions ([a,b])"
			}
			return nil, &pathError{Offset: -1, Msg: fmt.Sprintf("%s of JSONPath are not supported here; use $, .name, ['name'], [n], [*], .* and ..name (or the expr form)", what)}
		}
	}
	return p, nil
}

// bracketDashes rewrites dotted names holding characters ojg's dot notation
// does not take ("-" and "/", which EventBridge accepts: $.data.order-id)
// into bracket notation. It reports whether it changed anything.
func bracketDashes(src string) (string, bool) {
	if !strings.ContainsAny(src, "-/") {
		return src, false
	}
	var b strings.Builder
	changed := false
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '[': // copy brackets whole, quotes and all
			j := i + 1
			var q byte
			for ; j < len(src); j++ {
				if q != 0 {
					if src[j] == '\\' {
						j++
					} else if src[j] == q {
						q = 0
					}
					continue
				}
				if src[j] == '\'' || src[j] == '"' {
					q = src[j]
				} else if src[j] == ']' {
					break
				}
			}
			end := min(j+1, len(src))
			b.WriteString(src[i:end])
			i = end
		case c == '.' && i+1 < len(src) && src[i+1] != '.' && src[i+1] != '*' && src[i+1] != '[':
			j := i + 1
			for j < len(src) && src[j] != '.' && src[j] != '[' {
				j++
			}
			name := src[i+1 : j]
			if strings.ContainsAny(name, "-/") && !strings.ContainsAny(name, `'\ `) {
				b.WriteString("['")
				b.WriteString(name)
				b.WriteString("']")
				changed = true
			} else {
				b.WriteString(src[i:j])
			}
			i = j
		case c == '.' && i+1 < len(src) && src[i+1] == '.':
			// ..name: the name follows the second dot directly
			j := i + 2
			for j < len(src) && src[j] != '.' && src[j] != '[' {
				j++
			}
			name := src[i+2 : j]
			if name != "" && name != "*" && strings.ContainsAny(name, "-/") && !strings.ContainsAny(name, `'\ `) {
				b.WriteString("..['")
				b.WriteString(name)
				b.WriteString("']")
				changed = true
			} else {
				b.WriteString(src[i:j])
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), changed
}

// hit is one value a path reached.
type hit struct {
	start, end int // the value; end is -1 until someone needs it (valueEnd)
	member     int // where its member starts (the key's quote, or the element)
	container  int // the '{' or '[' holding it; -1 for the root
}

// valueEnd returns where the hit's value ends.
func (h *hit) valueEnd(b []byte) (int, error) {
	if h.end < 0 {
		end, err := skipValue(b, h.start)
		if err != nil {
			return 0, err
		}
		h.end = end
	}
	return h.end, nil
}

var errStop = errors.New("stop")

// walk calls fn for every value p reaches in the JSON value at b[root:],
// in document order (only the first for a path without wildcards).
func (p *Path) walk(b []byte, root int, fn func(hit) error) error {
	root = skipWS(b, root)
	end := -1 // found only when needed: a path of no steps reaches the root
	if len(p.steps) == 0 {
		var err error
		if end, err = skipValue(b, root); err != nil {
			return err
		}
	} else if !isContainer(b, root) {
		return nil
	}
	err := evalSteps(b, hit{start: root, end: end, member: root, container: -1}, p.steps, 0, fn)
	if err == errStop {
		return nil
	}
	return err
}

func evalSteps(b []byte, h hit, steps []step, depth int, fn func(hit) error) error {
	if len(steps) == 0 {
		return fn(h)
	}
	if depth > maxDepth {
		return errDepth
	}
	s := steps[0]
	if s.kind == stepDescent {
		return descend(b, h, steps[1:], depth, fn)
	}
	if !isContainer(b, h.start) {
		return nil
	}
	obj := b[h.start] == '{'
	switch s.kind {
	case stepChild:
		if !obj {
			return nil
		}
		it := newLazyIterator(b, h.start)
		var m member
		for it.next(&m) {
			if m.keyIs(b, s.name) {
				return evalSteps(b, hit{start: m.valStart, end: -1, member: m.keyStart, container: h.start}, steps[1:], depth+1, fn)
			}
		}
		return it.err
	case stepIndex:
		if obj {
			return nil
		}
		want := s.index
		if want < 0 {
			n, err := countElements(b, h.start)
			if err != nil {
				return err
			}
			if want += n; want < 0 {
				return nil
			}
		}
		it := newLazyIterator(b, h.start)
		var m member
		for k := 0; it.next(&m); k++ {
			if k == want {
				return evalSteps(b, hit{start: m.valStart, end: -1, member: m.valStart, container: h.start}, steps[1:], depth+1, fn)
			}
		}
		return it.err
	case stepWild:
		it := newIterator(b, h.start)
		var m member
		for it.next(&m) {
			if err := evalSteps(b, hit{start: m.valStart, end: m.valEnd, member: m.start(), container: h.start}, steps[1:], depth+1, fn); err != nil {
				return err
			}
		}
		return it.err
	}
	return nil
}

// descend applies steps at h and at every value nested in it.
func descend(b []byte, h hit, steps []step, depth int, fn func(hit) error) error {
	if depth > maxDepth {
		return errDepth
	}
	if err := evalSteps(b, h, steps, depth, fn); err != nil {
		return err
	}
	if !isContainer(b, h.start) {
		return nil
	}
	it := newIterator(b, h.start)
	var m member
	for it.next(&m) {
		if isContainer(b, m.valStart) {
			if err := descend(b, hit{start: m.valStart, end: m.valEnd, member: m.start(), container: h.start}, steps, depth+1, fn); err != nil {
				return err
			}
		}
	}
	return it.err
}

func countElements(b []byte, start int) (int, error) {
	it := newIterator(b, start)
	var m member
	n := 0
	for it.next(&m) {
		n++
	}
	return n, it.err
}

// first returns the value a single path reaches, ok false when none.
func (p *Path) first(b []byte, root int) (h hit, ok bool, err error) {
	err = p.walk(b, root, func(x hit) error {
		h, ok = x, true
		return errStop
	})
	return h, ok, err
}

// appendValue appends the compact JSON of what p reaches: the value itself,
// or for a path with wildcards the array of every value (possibly empty).
// found is false when a single path reaches nothing.
func (p *Path) appendValue(dst, b []byte, root int) (out []byte, found bool, err error) {
	if !p.multi {
		h, ok, err := p.first(b, root)
		if err != nil || !ok {
			return dst, false, err
		}
		dst, _, err = appendCompact(dst, b, h.start)
		return dst, err == nil, err
	}
	dst = append(dst, '[')
	n := 0
	err = p.walk(b, root, func(h hit) error {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		var err error
		dst, _, err = appendCompact(dst, b, h.start)
		return err
	})
	return append(dst, ']'), err == nil, err
}
