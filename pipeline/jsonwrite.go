package pipeline

import "unicode/utf8"

// AppendJSONString appends s as a JSON string escaped the way the stored
// form of an event escapes its attributes (pipeline.Encode, through the
// CloudEvents SDK's writer): '"', '\\', \n, \r and \t as such, other
// control characters as \u00XX (also \b and \f, which encoding/json
// shortens since Go 1.22), the HTML characters '<', '>' and '&', U+2028 and
// U+2029 as \u escapes. Writers that append events directly use it so that
// their output is byte for byte what the SDK path writes. Invalid UTF-8
// (which attributes cannot hold) comes out as encoding/json writes it: each
// bad byte as \ufffd.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigit[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigit = "0123456789abcdef"
