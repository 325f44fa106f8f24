package kclient

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/buger/jsonparser"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// PathKeys turns a JSONPath of the subset busbar takes ($, .name,
// ['name'], [n]) into jsonparser keys.
func PathKeys(p string) ([]string, error) {
	if !strings.HasPrefix(p, "$") {
		return nil, fmt.Errorf("JSONPath %q must start with $", p)
	}
	rest := p[1:]
	keys := []string{}
	for rest != "" {
		switch {
		case rest[0] == '.':
			end := strings.IndexAny(rest[1:], ".[")
			if end < 0 {
				end = len(rest) - 1
			}
			if end == 0 {
				return nil, fmt.Errorf("JSONPath %q: empty name", p)
			}
			keys = append(keys, rest[1:1+end])
			rest = rest[1+end:]
		case strings.HasPrefix(rest, "['"):
			end := strings.Index(rest, "']")
			if end < 0 {
				return nil, fmt.Errorf("JSONPath %q: unclosed ['", p)
			}
			keys = append(keys, strings.ReplaceAll(rest[2:end], `\'`, `'`))
			rest = rest[end+2:]
		case rest[0] == '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("JSONPath %q: unclosed [", p)
			}
			if _, err := strconv.Atoi(rest[1:end]); err != nil {
				return nil, fmt.Errorf("JSONPath %q: %q is not an index", p, rest[1:end])
			}
			keys = append(keys, rest[:end+1])
			rest = rest[end+1:]
		default:
			return nil, fmt.Errorf("JSONPath %q: unexpected %q", p, rest)
		}
	}
	return keys, nil
}

// CompileKey compiles a record key (a bus's partition_key, a kafka
// target's key): a JSONPath into the event ($.data.customerId) or an
// expr-lang expression over it (source + "/" + subject). Empty src means
// def ("" for none). The function returns "" when the event has no key.
func CompileKey(src, def string) (func(event []byte) string, error) {
	if src == "" {
		src = def
	}
	if src == "" {
		return nil, nil
	}
	if strings.HasPrefix(src, "$") {
		keys, err := PathKeys(src)
		if err != nil {
			return nil, err
		}
		return func(ev []byte) string {
			v, typ, _, err := jsonparser.Get(ev, keys...)
			if err != nil || typ == jsonparser.Null {
				return ""
			}
			if typ == jsonparser.String {
				if s, err := jsonparser.ParseString(v); err == nil {
					return s
				}
			}
			return string(v)
		}, nil
	}
	prog, err := expr.Compile(src, expr.AllowUndefinedVariables())
	if err != nil {
		return nil, err
	}
	return func(ev []byte) string { return runKey(prog, ev) }, nil
}

func runKey(prog *vm.Program, ev []byte) string {
	var env map[string]any
	if json.Unmarshal(ev, &env) != nil {
		return ""
	}
	out, err := expr.Run(prog, env)
	if err != nil || out == nil {
		return ""
	}
	if s, ok := out.(string); ok {
		return s
	}
	return fmt.Sprint(out)
}
