package pipeline

// A validating JSON scanner that accepts exactly what encoding/json's Valid
// accepts (same grammar, same nesting limit), records where values start and
// end, and notes what encoding/json's Marshal would rewrite in them
// (whitespace, HTML characters), so NormalizeJSON can copy values verbatim.

// maxNesting is encoding/json's nesting limit (scanner.go, maxNestingDepth).
const maxNesting = 10000

// scanFlags say what a scanned value holds.
type scanFlags uint8

const (
	flagWS     scanFlags = 1 << iota // whitespace between the tokens of the value
	flagHTML                         // '<', '>', '&' or a 0xE2 byte (maybe U+2028/U+2029) in a string
	flagEscape                       // a backslash escape in a string
	flagHigh                         // a byte >= 0x80 in a string
)

// Byte classes inside a string.
const (
	cPlain = iota
	cQuote
	cBackslash
	cControl
	cHTML
	cHigh
	cE2
)

var strClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = cControl
	}
	t['"'] = cQuote
	t['\\'] = cBackslash
	t['<'], t['>'], t['&'] = cHTML, cHTML, cHTML
	for c := 0x80; c < 0x100; c++ {
		t[c] = cHigh
	}
	t[0xE2] = cE2
	return t
}()

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// scanner walks b. Every method takes the index where its token starts and
// returns the index just after it, or -1 with errAt set on malformed JSON.
type scanner struct {
	b     []byte
	flags scanFlags // accumulated since the caller last cleared it
	errAt int
}

func (s *scanner) fail(i int) int {
	s.errAt = i
	return -1
}

// ws skips whitespace outside any value.
func (s *scanner) ws(i int) int {
	for i < len(s.b) && isWS(s.b[i]) {
		i++
	}
	return i
}

// wsIn skips whitespace inside a value, noting that there was some.
func (s *scanner) wsIn(i int) int {
	j := s.ws(i)
	if j != i {
		s.flags |= flagWS
	}
	return j
}

// value scans one JSON value; depth is the nesting of its container.
func (s *scanner) value(i, depth int) int {
	if i >= len(s.b) {
		return s.fail(i)
	}
	switch c := s.b[i]; {
	case c == '"':
		return s.str(i)
	case c == '{':
		return s.object(i, depth+1)
	case c == '[':
		return s.array(i, depth+1)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.num(i)
	case c == 't':
		return s.lit(i, "true")
	case c == 'f':
		return s.lit(i, "false")
	case c == 'n':
		return s.lit(i, "null")
	}
	return s.fail(i)
}

func (s *scanner) lit(i int, word string) int {
	if len(s.b)-i < len(word) || string(s.b[i:i+len(word)]) != word {
		return s.fail(i)
	}
	return i + len(word)
}

func (s *scanner) object(i, depth int) int {
	if depth > maxNesting {
		return s.fail(i)
	}
	i = s.wsIn(i + 1)
	if i < len(s.b) && s.b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(s.b) || s.b[i] != '"' {
			return s.fail(i)
		}
		if i = s.str(i); i < 0 {
			return -1
		}
		i = s.wsIn(i)
		if i >= len(s.b) || s.b[i] != ':' {
			return s.fail(i)
		}
		if i = s.value(s.wsIn(i+1), depth); i < 0 {
			return -1
		}
		i = s.wsIn(i)
		if i >= len(s.b) {
			return s.fail(i)
		}
		switch s.b[i] {
		case ',':
			i = s.wsIn(i + 1)
		case '}':
			return i + 1
		default:
			return s.fail(i)
		}
	}
}

func (s *scanner) array(i, depth int) int {
	if depth > maxNesting {
		return s.fail(i)
	}
	i = s.wsIn(i + 1)
	if i < len(s.b) && s.b[i] == ']' {
		return i + 1
	}
	for {
		if i = s.value(i, depth); i < 0 {
			return -1
		}
		i = s.wsIn(i)
		if i >= len(s.b) {
			return s.fail(i)
		}
		switch s.b[i] {
		case ',':
			i = s.wsIn(i + 1)
		case ']':
			return i + 1
		default:
			return s.fail(i)
		}
	}
}

// str scans a string starting at its opening quote.
func (s *scanner) str(i int) int {
	b := s.b
	i++
	for i < len(b) {
		switch strClass[b[i]] {
		case cPlain:
			i++
		case cQuote:
			return i + 1
		case cBackslash:
			s.flags |= flagEscape
			if i+1 >= len(b) {
				return s.fail(i + 1)
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(b) || !isHex(b[k]) {
						return s.fail(k)
					}
				}
				i += 6
			default:
				return s.fail(i + 1)
			}
		case cControl:
			return s.fail(i)
		case cHTML:
			s.flags |= flagHTML
			i++
		case cHigh:
			s.flags |= flagHigh
			i++
		case cE2:
			s.flags |= flagHTML | flagHigh
			i++
		}
	}
	return s.fail(i)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// num scans a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) num(i int) int {
	b := s.b
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return s.fail(i)
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return s.fail(i)
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return s.fail(i)
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i
}
