package http

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters/transform/reshape"
)

// value is a string with {$.json.path} placeholders (<$.json.path> in chat
// texts), compiled once: literal text around JSONPaths evaluated on each
// event by the transforms' path engine.
type value struct {
	lits   []string
	paths  []*reshape.Program // each the "part" form of one path
	src    []string           // the paths as written, for errors
	escape []func(string) string
}

// compileValue compiles s. config validated it already; an error here means
// a config built in code that skipped validation.
func compileValue(s string, open, close byte) (*value, error) {
	lits, paths, err := config.SplitPlaceholders(s, open, close)
	if err != nil {
		return nil, err
	}
	v := &value{lits: lits, src: paths}
	for _, p := range paths {
		prog, err := reshape.Compile(reshape.Spec{Form: reshape.FormPart, Path: p}, reshape.Options{})
		if err != nil {
			return nil, fmt.Errorf("placeholder %c%s%c: %w", open, p, close, err)
		}
		v.paths = append(v.paths, prog)
	}
	v.escape = make([]func(string) string, len(paths))
	return v, nil
}

// static reports whether the value has no placeholders.
func (v *value) static() bool { return len(v.paths) == 0 }

// render fills the placeholders from the event ev (structured CloudEvents
// JSON). A string value is inserted as its text, any other value as JSON;
// missing or null values insert nothing and missing names the first of
// them. Each inserted value goes through the placeholder's escape, if any.
func (v *value) render(ev []byte) (s string, missing string, err error) {
	if v.static() {
		return v.lits[0], "", nil
	}
	var b strings.Builder
	b.WriteString(v.lits[0])
	for i, p := range v.paths {
		out, _, err := p.Apply(ev, reshape.Meta{})
		if err != nil {
			return "", "", fmt.Errorf("placeholder %s: %w", v.src[i], err)
		}
		text, ok := jsonText(out)
		if !ok && missing == "" {
			missing = v.src[i]
		}
		if esc := v.escape[i]; esc != nil {
			text = esc(text)
		}
		b.WriteString(text)
		b.WriteString(v.lits[i+1])
	}
	return b.String(), missing, nil
}

// jsonText turns a JSON value into placeholder text: a string's content,
// the JSON of anything else; ok is false for null (or nothing found).
func jsonText(j []byte) (string, bool) {
	switch {
	case len(j) == 0 || string(j) == "null":
		return "", false
	case j[0] == '"':
		var s string
		if json.Unmarshal(j, &s) == nil {
			return s, true
		}
	}
	return string(j), true
}

// param is a header or query parameter with its compiled value.
type param struct {
	name string
	val  *value
}

// compileParams compiles a map of parameters, sorted by name so that
// requests are built the same way every time.
func compileParams(m map[string]string) ([]param, error) {
	out := make([]param, 0, len(m))
	for name, s := range m {
		v, err := compileValue(s, '{', '}')
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, param{name: name, val: v})
	}
	slices.SortFunc(out, func(a, b param) int { return strings.Compare(a.name, b.name) })
	return out, nil
}
