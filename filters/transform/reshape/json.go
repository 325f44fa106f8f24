package reshape

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the JSON primitives the transforms run on: they read the
// event's bytes where they are, without decoding it. Skipping (skipValue) is
// lenient and fast: it finds where a value ends in valid JSON and never
// panics or loops on invalid JSON. Anything copied into an output goes
// through appendCompact, which is strict, so a transform's JSON output is
// valid whatever the input.

// maxDepth bounds how deeply the functions here follow nested values.
const maxDepth = 1000

var (
	errSyntax = errors.New("the event is not valid JSON")
	errDepth  = fmt.Errorf("the event nests deeper than %d levels", maxDepth)
)

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// SWAR: eight bytes at a time. hasZero's lowest set bit marks the first
// zero byte exactly (bits above it may be false alarms, never used).
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

func hasZero(x uint64) uint64 { return (x - ones) & ^x & highs }

// quoteOrBackslash marks the bytes of x that are '"' or '\\'.
func quoteOrBackslash(x uint64) uint64 {
	return hasZero(x^(ones*'"')) | hasZero(x^(ones*'\\'))
}

// stringEnd returns the index after the closing quote of the string that
// starts at b[i] == '"', and whether it holds a backslash escape.
func stringEnd(b []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	for {
		for j+8 <= len(b) {
			m := quoteOrBackslash(binary.LittleEndian.Uint64(b[j:]))
			if m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j >= len(b) {
			return 0, false, errSyntax
		}
		switch b[j] {
		case '"':
			return j + 1, escaped, nil
		case '\\':
			escaped = true
			j += 2
		default:
			j++
		}
	}
}

// stringSpecial marks the bytes checkString must look at: the quote, the
// backslash and control characters.
var stringSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// structural marks the bytes skipValue stops at inside objects and arrays.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// skipValue returns the index after the value starting at b[i] (no leading
// whitespace).
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; c {
	case '"':
		end, _, err := stringEnd(b, i)
		return end, err
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			c := b[j]
			if !structural[c] {
				continue
			}
			switch c {
			case '"':
				end, _, err := stringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
				if depth > maxDepth {
					return 0, errDepth
				}
			default: // '}', ']'
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	default:
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || isWS(c) {
				break
			}
			j++
		}
		if j == i {
			return 0, errSyntax
		}
		return j, nil
	}
}

// member is one entry of an object (or element of an array, with key
// unset): where it starts and where its value is.
type member struct {
	keyStart, keyEnd int // the key with its quotes; 0, 0 for array elements
	escaped          bool
	valStart, valEnd int
}

// start is where the member begins: its key, or its value for an element.
func (m *member) start() int {
	if m.keyEnd > 0 {
		return m.keyStart
	}
	return m.valStart
}

// keyIs reports whether the member's key is name.
func (m *member) keyIs(b []byte, name string) bool {
	raw := b[m.keyStart+1 : m.keyEnd-1]
	if !m.escaped {
		return string(raw) == name
	}
	return string(unescape(nil, raw)) == name
}

// iterator walks the members of the object or array at b[start]. A lazy
// iterator leaves a member's valEnd at -1 and skips the value only when
// asked for the next member, so a caller that reads the value itself can
// say where it ended (consumed) and save a second pass.
type iterator struct {
	b       []byte
	i       int
	obj     bool
	first   bool
	lazy    bool
	pending int // a lazy iterator's current value, to skip first; -1 none
	err     error
}

func newIterator(b []byte, start int) iterator {
	return iterator{b: b, i: start + 1, obj: b[start] == '{', first: true, pending: -1}
}

func newLazyIterator(b []byte, start int) iterator {
	it := newIterator(b, start)
	it.lazy = true
	return it
}

// consumed tells a lazy iterator that the current value ends at end.
func (it *iterator) consumed(end int) { it.i, it.pending = end, -1 }

// next fills m with the next member; false at the end or on an error
// (it.err).
func (it *iterator) next(m *member) bool {
	b := it.b
	if it.pending >= 0 {
		end, err := skipValue(b, it.pending)
		if err != nil {
			it.err = err
			return false
		}
		it.i, it.pending = end, -1
	}
	i := skipWS(b, it.i)
	if i >= len(b) {
		it.err = errSyntax
		return false
	}
	if b[i] == '}' || b[i] == ']' {
		it.i = i + 1
		return false
	}
	if !it.first {
		if b[i] != ',' {
			it.err = errSyntax
			return false
		}
		i = skipWS(b, i+1)
	}
	it.first = false
	if it.obj {
		if i >= len(b) || b[i] != '"' {
			it.err = errSyntax
			return false
		}
		end, esc, err := stringEnd(b, i)
		if err != nil {
			it.err = err
			return false
		}
		m.keyStart, m.keyEnd, m.escaped = i, end, esc
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			it.err = errSyntax
			return false
		}
		i = skipWS(b, i+1)
	} else {
		m.keyStart, m.keyEnd, m.escaped = 0, 0, false
	}
	if i >= len(b) {
		it.err = errSyntax
		return false
	}
	if it.lazy {
		m.valStart, m.valEnd = i, -1
		it.i, it.pending = i, i
		return true
	}
	end, err := skipValue(b, i)
	if err != nil {
		it.err = err
		return false
	}
	m.valStart, m.valEnd = i, end
	it.i = end
	return true
}

// isContainer reports whether a value starts an object or an array.
func isContainer(b []byte, i int) bool { return i < len(b) && (b[i] == '{' || b[i] == '[') }

// appendCompact appends the value at b[i:] to dst without insignificant
// whitespace, checking it strictly: the result is always valid JSON.
func appendCompact(dst, b []byte, i int) ([]byte, int, error) {
	return compactValue(dst, b, i, 0)
}

func compactValue(dst, b []byte, i, depth int) ([]byte, int, error) {
	if depth > maxDepth {
		return dst, 0, errDepth
	}
	i = skipWS(b, i)
	if i >= len(b) {
		return dst, 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		end, err := checkString(b, i)
		if err != nil {
			return dst, 0, err
		}
		return append(dst, b[i:end]...), end, nil
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		dst = append(dst, c)
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return append(dst, closer), i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return dst, 0, errSyntax
				}
				var end int
				if end, err = checkString(b, i); err != nil {
					return dst, 0, err
				}
				dst = append(dst, b[i:end]...)
				i = skipWS(b, end)
				if i >= len(b) || b[i] != ':' {
					return dst, 0, errSyntax
				}
				dst = append(dst, ':')
				i++
			}
			if dst, i, err = compactValue(dst, b, i, depth+1); err != nil {
				return dst, 0, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return dst, 0, errSyntax
			}
			if b[i] == closer {
				return append(dst, closer), i + 1, nil
			}
			if b[i] != ',' {
				return dst, 0, errSyntax
			}
			dst = append(dst, ',')
			i = skipWS(b, i+1)
		}
	case c == 't':
		return literal(dst, b, i, "true")
	case c == 'f':
		return literal(dst, b, i, "false")
	case c == 'n':
		return literal(dst, b, i, "null")
	default:
		end := numberEnd(b, i)
		if end == i {
			return dst, 0, errSyntax
		}
		return append(dst, b[i:end]...), end, nil
	}
}

func literal(dst, b []byte, i int, lit string) ([]byte, int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return dst, 0, errSyntax
	}
	return append(dst, lit...), i + len(lit), nil
}

// numberEnd returns the end of the JSON number at b[i:], or i when there is
// none.
func numberEnd(b []byte, i int) int {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return i
	}
	if j < len(b) && b[j] == '.' {
		k := j + 1
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		if k == j+1 {
			return i
		}
		j = k
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		k := j + 1
		if k < len(b) && (b[k] == '+' || b[k] == '-') {
			k++
		}
		d := k
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		if k == d {
			return i
		}
		j = k
	}
	return j
}

// checkString checks the string at b[i] == '"' strictly (escapes, no
// control characters) and returns its end.
func checkString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			m := quoteOrBackslash(x) | (x-ones*0x20)&^x&highs // '"', '\\' or < 0x20
			if m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		for j < len(b) && !stringSpecial[b[j]] {
			j++
		}
		if j >= len(b) {
			return 0, errSyntax
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, errSyntax
		default: // '\\'
			if j+1 >= len(b) {
				return 0, errSyntax
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) || !isHex4(b[j+2:j+6]) {
					return 0, errSyntax
				}
				j += 6
			default:
				return 0, errSyntax
			}
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape appends the text of a JSON string's content (without quotes).
// Invalid escapes are kept as written; lone surrogates become U+FFFD.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			dst = append(dst, c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+5 > len(s) || !isHex4(s[i+1:i+5]) {
				dst = append(dst, '\\', 'u')
				continue
			}
			r := hex4(s[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' && isHex4(s[i+3:i+7]) {
					if r2 := utf16.DecodeRune(r, hex4(s[i+3:i+7])); r2 != utf8.RuneError {
						r = r2
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // " \ /
			dst = append(dst, s[i])
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s escaped for the inside of a JSON string. HTML
// characters are left alone: the output is not meant for a browser.
func appendEscaped(dst []byte, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			if r == '\u2028' || r == '\u2029' {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\u202`...)
				dst = append(dst, hexDigits[r&0xf])
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, []byte(s))
	return append(dst, '"')
}

// decodeValue decodes the value at b[i:] into map[string]any, []any,
// string, bool, nil or a number (see decodeNumber). It returns the end.
func decodeValue(b []byte, i, depth int) (any, int, error) {
	if depth > maxDepth {
		return nil, 0, errDepth
	}
	i = skipWS(b, i)
	if i >= len(b) {
		return nil, 0, errSyntax
	}
	switch c := b[i]; c {
	case '"':
		end, err := checkString(b, i)
		if err != nil {
			return nil, 0, err
		}
		return decodeString(b[i:end]), end, nil
	case '{':
		m := map[string]any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return m, i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return nil, 0, errSyntax
			}
			end, err := checkString(b, i)
			if err != nil {
				return nil, 0, err
			}
			key := decodeString(b[i:end])
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return nil, 0, errSyntax
			}
			var v any
			if v, i, err = decodeValue(b, i+1, depth+1); err != nil {
				return nil, 0, err
			}
			if _, dup := m[key]; !dup {
				m[key] = v // the first of duplicate keys, as paths read them
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == '}' {
				return m, i + 1, nil
			}
			if i >= len(b) || b[i] != ',' {
				return nil, 0, errSyntax
			}
			i = skipWS(b, i+1)
		}
	case '[':
		a := []any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return a, i + 1, nil
		}
		for {
			v, end, err := decodeValue(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			a = append(a, v)
			i = skipWS(b, end)
			if i < len(b) && b[i] == ']' {
				return a, i + 1, nil
			}
			if i >= len(b) || b[i] != ',' {
				return nil, 0, errSyntax
			}
			i++
		}
	case 't':
		_, end, err := literal(nil, b, i, "true")
		return true, end, err
	case 'f':
		_, end, err := literal(nil, b, i, "false")
		return false, end, err
	case 'n':
		_, end, err := literal(nil, b, i, "null")
		return nil, end, err
	default:
		end := numberEnd(b, i)
		if end == i {
			return nil, 0, errSyntax
		}
		return decodeNumber(b[i:end]), end, nil
	}
}

// decodeString returns the content of a checked JSON string (with quotes).
func decodeString(q []byte) string {
	s := q[1 : len(q)-1]
	for _, c := range s {
		if c == '\\' {
			return string(unescape(make([]byte, 0, len(s)), s))
		}
	}
	return string(s)
}

// Number is a JSON number whose exact text a float64 or an int cannot hold
// (12345678901234567890, 0.1000000000000000055511): expressions can pass
// it through unchanged, and it is written back as it was.
type Number string

// decodeNumber turns JSON number text into an int when it is an integer
// that fits, a float64 when one holds it without losing digits (at most 15
// significant digits), and a Number otherwise, so that passing a value
// through an expression never changes it.
func decodeNumber(t []byte) any {
	integer := true
	digits := 0 // significant digits of the mantissa
	leading := true
	for _, c := range t {
		if c == 'e' || c == 'E' {
			integer = false
			break
		}
		switch {
		case c == '.':
			integer = false
		case c >= '0' && c <= '9':
			if c != '0' || !leading {
				leading = false
				digits++
			}
		}
	}
	if integer {
		if n, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return int(n)
		}
		return Number(t)
	}
	if digits <= 15 {
		if f, err := strconv.ParseFloat(string(t), 64); err == nil && !math.IsInf(f, 0) {
			return f
		}
	}
	return Number(t)
}

// appendAny appends v, the result of an expression, as JSON.
func appendAny(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, errors.New("the result nests deeper than 1000 levels")
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case float64:
		return appendFloat(dst, x, 64)
	case float32:
		return appendFloat(dst, float64(x), 32)
	case Number:
		return append(dst, x...), nil
	case time.Time:
		return appendString(dst, x.Format(time.RFC3339Nano)), nil
	case time.Duration:
		return appendString(dst, x.String()), nil
	case map[string]any:
		dst = append(dst, '{')
		var buf [16]string
		keys := buf[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendAny(dst, x[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendAny(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, e)
		}
		return append(dst, ']'), nil
	case map[string]string:
		dst = append(dst, '{')
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sortStrings(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, x[k])
		}
		return append(dst, '}'), nil
	}
	return appendReflect(dst, v, depth)
}

// appendFloat writes a float the way encoding/json does.
func appendFloat(dst []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, fmt.Errorf("the result holds %v, which JSON cannot represent", f)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// appendReflect writes any other value an expression can produce (say a
// []int from map()) with encoding/json.
func appendReflect(dst []byte, v any, depth int) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("the result cannot be written as JSON: %v", err)
	}
	return append(dst, b...), nil
}

func sortStrings(s []string) { slices.Sort(s) }
