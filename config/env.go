package config

import (
	"fmt"
	"strings"
)

// expandEnv replaces ${NAME} and ${NAME:-default} in s with the value of the
// environment variable NAME (the default when NAME is unset or empty). "$${"
// stands for a literal "${"; a "$" not followed by "{" is kept as it is, so
// expressions and patterns that use "$" need no escaping.
//
// expanded reports whether s held any reference. Errors never quote values of
// variables, only their names.
func expandEnv(s string, lookup func(string) (string, bool)) (out string, expanded bool, err error) {
	if !strings.Contains(s, "${") {
		return s, false, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' { // "$${" is a literal "${"
			b.WriteString(s[:i])
			b.WriteString("{")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", false, fmt.Errorf("%q has no closing \"}\" (write ${NAME} or ${NAME:-default}; write $${ for a literal ${)", s[i:])
		}
		ref := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			return "", false, fmt.Errorf("${%s} is not a valid environment variable reference (names are letters, digits and _, not starting with a digit; a default is written ${NAME:-default}; write $${ for a literal ${)", ref)
		}
		v, ok := lookup(name)
		switch {
		case ok && v != "":
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		case ok:
			// Set but empty, and no default: empty is what was asked for.
		default:
			return "", false, fmt.Errorf("environment variable %s is not set (set it, or give a default: ${%s:-value})", name, name)
		}
		expanded = true
		s = s[i+end+1:]
	}
	return b.String(), expanded, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
