package reshape

import (
	"fmt"
	"regexp"
	"strings"
)

// Templates follow EventBridge's input transformer: variables defined by
// paths are written <name>. A template that begins with {, [ or " and is
// JSON once its placeholders are read as values is a JSON template: its
// output is always valid JSON, whatever the variables hold. Any other
// template is text.

// MaxVariables is how many variables a template's paths may define.
const MaxVariables = 100

// Reserved variables: usable in every template without a path.
const (
	VarRuleName      = "busbar.rule-name"
	VarBus           = "busbar.bus"
	VarEvent         = "busbar.event"      // the event without data
	VarEventJSON     = "busbar.event.json" // the whole event
	VarIngestionTime = "busbar.event.ingestion-time"
)

// ReservedPrefix starts the names of reserved variables; paths may not
// define names starting with it.
const ReservedPrefix = "busbar."

var reserved = []string{VarRuleName, VarBus, VarEvent, VarEventJSON, VarIngestionTime}

// IngestTimeAttr is the extension attribute holding when busbar accepted the
// event (pipeline.ExtIngestTime).
const IngestTimeAttr = "busbaringesttime"

var varName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

type segKind uint8

const (
	segLit      segKind = iota
	segValue            // a JSON template's placeholder where a value goes
	segInString         // a placeholder inside a JSON template's string
	segText             // a placeholder in a text template
)

type segment struct {
	kind segKind
	lit  []byte
	v    int // index into template.vars
}

// variable is a template variable: a path, or a reserved one.
type variable struct {
	name string
	path *Path // nil for reserved variables
}

type template struct {
	json bool
	segs []segment
	vars []variable // only the variables the template uses
	size int        // bytes of literal text, to size the output
	trie *trieNode  // the variables with simple paths, read in one pass
	// inTrie marks the variables the trie reads.
	inTrie []bool
}

// templateError is a template that does not compile; Offset counts bytes in
// the template.
type templateError struct {
	Offset int
	Msg    string
}

func (e *templateError) Error() string { return e.Msg }

// compileTemplate compiles src with the variables paths defines (already
// compiled, by name).
func compileTemplate(src string, paths map[string]*Path) (*template, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &templateError{Offset: -1, Msg: "the template is empty (write JSON or text with <variable> placeholders)"}
	}
	t := &template{}
	index := map[string]int{}
	lookup := func(name string) (int, bool) {
		if i, ok := index[name]; ok {
			return i, true
		}
		p, ok := paths[name]
		if !ok && !isReserved(name) {
			return 0, false
		}
		index[name] = len(t.vars)
		t.vars = append(t.vars, variable{name: name, path: p})
		return len(t.vars) - 1, true
	}
	trimmed := strings.TrimLeft(src, " \t\r\n")
	if trimmed != "" && strings.IndexByte(`{["`, trimmed[0]) >= 0 {
		jp := &jsonTemplate{src: src, lookup: lookup}
		err := jp.parse()
		if err == nil {
			t.json, t.segs = true, jp.segs
			t.finish()
			return t, nil
		}
		if trimmed[0] == '{' {
			return nil, err
		}
		// "[ALERT] <id> …" or "\"quoted\" text": a text template.
		t.vars, index = nil, map[string]int{}
	}
	var lit []byte
	for i := 0; i < len(src); {
		if src[i] == '<' {
			if name, end, ok := placeholderAt(src, i); ok {
				if v, ok := lookup(name); ok {
					if len(lit) > 0 {
						t.segs = append(t.segs, segment{kind: segLit, lit: lit})
						lit = nil
					}
					t.segs = append(t.segs, segment{kind: segText, v: v})
					i = end
					continue
				}
			}
		}
		lit = append(lit, src[i])
		i++
	}
	if len(lit) > 0 {
		t.segs = append(t.segs, segment{kind: segLit, lit: lit})
	}
	t.finish()
	return t, nil
}

func (t *template) finish() {
	for _, s := range t.segs {
		t.size += len(s.lit)
	}
	t.inTrie = make([]bool, len(t.vars))
	for i, v := range t.vars {
		if v.path != nil && v.path.simple() {
			if t.trie == nil {
				t.trie = &trieNode{}
			}
			t.trie.add(v.path, i)
			t.inTrie[i] = true
		}
	}
}

func isReserved(name string) bool {
	for _, r := range reserved {
		if r == name {
			return true
		}
	}
	return false
}

// placeholderAt reads "<name>" at src[i] == '<'.
func placeholderAt(src string, i int) (name string, end int, ok bool) {
	j := i + 1
	for j < len(src) && j-i <= 80 {
		c := src[j]
		if c == '>' {
			name = src[i+1 : j]
			return name, j + 1, name != ""
		}
		if !(c == '_' || c == '.' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "", 0, false
		}
		j++
	}
	return "", 0, false
}

// jsonTemplate parses a JSON template into segments, dropping whitespace
// outside strings (EventBridge minifies too).
type jsonTemplate struct {
	src    string
	i      int
	lit    []byte
	segs   []segment
	lookup func(string) (int, bool)
	depth  int
}

func (p *jsonTemplate) fail(at int, format string, args ...any) error {
	return &templateError{Offset: at, Msg: fmt.Sprintf(format, args...)}
}

func (p *jsonTemplate) flush() {
	if len(p.lit) > 0 {
		p.segs = append(p.segs, segment{kind: segLit, lit: p.lit})
		p.lit = nil
	}
}

func (p *jsonTemplate) ws() {
	for p.i < len(p.src) && isWS(p.src[p.i]) {
		p.i++
	}
}

func (p *jsonTemplate) parse() error {
	if err := p.value(); err != nil {
		return err
	}
	p.ws()
	if p.i < len(p.src) {
		return p.fail(p.i, "the JSON template continues after its end (%q); remove it, or write the template as text", snippet(p.src[p.i:]))
	}
	p.flush()
	return nil
}

func snippet(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

func (p *jsonTemplate) value() error {
	p.ws()
	if p.i >= len(p.src) {
		return p.fail(p.i, "the JSON template ends where a value should be")
	}
	if p.depth++; p.depth > maxDepth {
		return p.fail(p.i, "the JSON template nests deeper than %d levels", maxDepth)
	}
	defer func() { p.depth-- }()
	switch c := p.src[p.i]; {
	case c == '{' || c == '[':
		obj := c == '{'
		closer := byte('}')
		if !obj {
			closer = ']'
		}
		p.lit = append(p.lit, c)
		p.i++
		p.ws()
		if p.i < len(p.src) && p.src[p.i] == closer {
			p.lit = append(p.lit, closer)
			p.i++
			return nil
		}
		for {
			if obj {
				p.ws()
				if p.i >= len(p.src) {
					return p.fail(p.i, "the JSON template ends inside an object")
				}
				switch p.src[p.i] {
				case '"':
					if err := p.str(true); err != nil {
						return err
					}
				case '<':
					return p.fail(p.i, "a placeholder cannot be an object key (EventBridge has the same rule); use a fixed key")
				default:
					return p.fail(p.i, "expected a quoted object key, found %q", snippet(p.src[p.i:]))
				}
				p.ws()
				if p.i >= len(p.src) || p.src[p.i] != ':' {
					return p.fail(p.i, "expected ':' after the object key")
				}
				p.lit = append(p.lit, ':')
				p.i++
			}
			if err := p.value(); err != nil {
				return err
			}
			p.ws()
			if p.i >= len(p.src) {
				return p.fail(p.i, "the JSON template ends before its closing %q", closer)
			}
			switch p.src[p.i] {
			case closer:
				p.lit = append(p.lit, closer)
				p.i++
				return nil
			case ',':
				p.lit = append(p.lit, ',')
				p.i++
				if obj {
					p.ws()
					if p.i < len(p.src) && p.src[p.i] == '}' {
						return p.fail(p.i-1, "trailing comma before '}'")
					}
				}
			default:
				return p.fail(p.i, "expected ',' or %q, found %q", closer, snippet(p.src[p.i:]))
			}
		}
	case c == '"':
		return p.str(false)
	case c == '<':
		name, end, ok := placeholderAt(p.src, p.i)
		if !ok {
			return p.fail(p.i, "expected a value or a <variable> placeholder")
		}
		v, ok := p.lookup(name)
		if !ok {
			return p.fail(p.i, "the template uses <%s>, which paths does not define (define it under paths, or use a reserved variable: %s)", name, strings.Join(reservedList(), ", "))
		}
		p.flush()
		p.segs = append(p.segs, segment{kind: segValue, v: v})
		p.i = end
		return nil
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(p.src[p.i:], lit) {
				p.lit = append(p.lit, lit...)
				p.i += len(lit)
				return nil
			}
		}
	default:
		if end := numberEnd([]byte(p.src), p.i); end > p.i {
			p.lit = append(p.lit, p.src[p.i:end]...)
			p.i = end
			return nil
		}
	}
	return p.fail(p.i, "expected a JSON value, found %q", snippet(p.src[p.i:]))
}

func reservedList() []string {
	out := make([]string, len(reserved))
	for i, r := range reserved {
		out[i] = "<" + r + ">"
	}
	return out
}

// str copies a JSON string, turning placeholders inside it into segments.
func (p *jsonTemplate) str(key bool) error {
	start := p.i
	p.lit = append(p.lit, '"')
	p.i++
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == '"':
			p.lit = append(p.lit, '"')
			p.i++
			return nil
		case c < 0x20:
			return p.fail(p.i, "a line break or control character inside a JSON string of the template; write it as \\n (or \\u00XX)")
		case c == '\\':
			if p.i+1 >= len(p.src) {
				return p.fail(p.i, "the template ends inside a string")
			}
			switch p.src[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.lit = append(p.lit, p.src[p.i:p.i+2]...)
				p.i += 2
			case 'u':
				if p.i+6 > len(p.src) || !isHex4([]byte(p.src[p.i+2:p.i+6])) {
					return p.fail(p.i, "invalid \\u escape in the template")
				}
				p.lit = append(p.lit, p.src[p.i:p.i+6]...)
				p.i += 6
			default:
				return p.fail(p.i, "invalid escape \\%c in a JSON string of the template", p.src[p.i+1])
			}
		case c == '<':
			if name, end, ok := placeholderAt(p.src, p.i); ok {
				if v, ok := p.lookup(name); ok {
					if key {
						return p.fail(p.i, "a placeholder cannot be used in an object key (EventBridge has the same rule); use a fixed key")
					}
					p.flush()
					p.segs = append(p.segs, segment{kind: segInString, v: v})
					p.i = end
					continue
				}
			}
			p.lit = append(p.lit, c)
			p.i++
		default:
			p.lit = append(p.lit, c)
			p.i++
		}
	}
	return p.fail(start, "a string of the JSON template is not closed")
}

// render writes the template for ev. vals holds each variable's compact
// JSON (or nil when its path found nothing).
func (t *template) render(dst []byte, vals [][]byte, limit int) ([]byte, error) {
	for _, s := range t.segs {
		switch s.kind {
		case segLit:
			dst = append(dst, s.lit...)
		case segValue:
			if v := vals[s.v]; v != nil {
				dst = append(dst, v...)
			} else {
				dst = append(dst, "null"...)
			}
		case segInString:
			if v := vals[s.v]; v != nil {
				if v[0] == '"' {
					dst = append(dst, v[1:len(v)-1]...) // already escaped
				} else {
					dst = appendEscaped(dst, v)
				}
			}
		case segText:
			if v := vals[s.v]; v != nil {
				if v[0] == '"' {
					dst = unescape(dst, v[1:len(v)-1])
				} else {
					dst = append(dst, v...)
				}
			}
		}
		if len(dst) > limit {
			return dst, errTooLarge(limit)
		}
	}
	return dst, nil
}

func errTooLarge(limit int) error {
	return fmt.Errorf("the output is larger than %d bytes", limit)
}
