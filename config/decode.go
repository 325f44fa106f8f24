package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	// maxVisits bounds how many YAML nodes one load may visit, counting every
	// expansion of an alias, so that an alias bomb ("billion laughs") fails
	// in milliseconds instead of eating memory.
	maxVisits = 1_000_000
	// maxPatternDepth bounds how deeply an event pattern may nest.
	maxPatternDepth = 32
	// maxPatternValues bounds the keys and values of one event pattern.
	maxPatternValues = 10_000
)

var (
	durationType   = reflect.TypeFor[Duration]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
)

// decoder turns a yaml.Node tree into the model, collecting every problem
// with its position and field path instead of stopping at the first one.
type decoder struct {
	file   string
	lookup func(string) (string, bool)
	errs   ErrorList
	// pos is where each field path's value starts; the validator uses it to
	// place its errors. Paths inside patterns are recorded too.
	pos map[string]Pos
	// templates holds the text before expansion of every value that held an
	// ${ENV} reference, by field path.
	templates map[string]string
	// strings holds the scalar node of every string field, for placing
	// errors inside a value (a filter expression's line and column).
	strings map[string]*yaml.Node
	// bad marks paths that already have an error, so the validator does not
	// report the same field again as missing.
	bad     map[string]bool
	visits  int
	stopped bool
	// patternValues counts the values of the pattern being converted.
	patternValues int
}

func newDecoder(file string, lookup func(string) (string, bool)) *decoder {
	return &decoder{
		file:      file,
		lookup:    lookup,
		pos:       map[string]Pos{},
		templates: map[string]string{},
		strings:   map[string]*yaml.Node{},
		bad:       map[string]bool{},
	}
}

func posOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if d.stopped {
		return
	}
	if path != "" {
		d.bad[path] = true
	}
	var p Pos
	if n != nil {
		p = posOf(n)
	}
	d.errs = append(d.errs, &Error{File: d.file, Pos: p, Path: path, Msg: fmt.Sprintf(format, args...)})
	if len(d.errs) >= maxErrors {
		d.errs = append(d.errs, &Error{File: d.file, Pos: p, Msg: fmt.Sprintf("too many errors (%d); fix these and load again", maxErrors)})
		d.stopped = true
	}
}

// enter resolves an alias and counts the visit. It returns false when the
// load must stop.
func (d *decoder) enter(n *yaml.Node) (*yaml.Node, bool) {
	if d.stopped {
		return nil, false
	}
	d.visits++
	if d.visits > maxVisits {
		d.errorf(n, "", "the document expands to more than %d values (YAML aliases are expanded each time they are used); write it out without aliases", maxVisits)
		d.stopped = true
		return nil, false
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n, "", "alias *%s refers to no anchor", n.Value)
			return nil, false
		}
		return n.Alias, true
	}
	return n, true
}

// decodeRoot decodes the first document of a parsed file into c.
func (d *decoder) decodeRoot(doc *yaml.Node, c *Config) {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == 0 || isNull(n) {
		return // an empty file is an empty config
	}
	d.decodeValue(n, reflect.ValueOf(c).Elem(), "")
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "null"
		}
		return "a string"
	}
	return "nothing"
}

func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, path string) {
	n, ok := d.enter(n)
	if !ok {
		return
	}
	d.pos[path] = posOf(n)
	if isNull(n) {
		return // null leaves the zero value: the default, or "missing"
	}
	switch v.Type() {
	case durationType:
		d.decodeDuration(n, v, path)
		return
	case rawMessageType:
		d.decodePattern(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		d.decodeValue(n, e.Elem(), path)
		if !d.bad[path] {
			v.Set(e)
		}
	case reflect.String:
		if s, _, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
			d.strings[path] = n
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		d.decodeInt(n, v, path)
	case reflect.Bool:
		d.decodeBool(n, v, path)
	default:
		panic("config: no decoder for " + v.Type().String())
	}
}

// scalar returns the text of a scalar node with ${ENV} references expanded.
func (d *decoder) scalar(n *yaml.Node, path, want string) (s string, expanded, ok bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, got %s", want, describe(n))
		return "", false, false
	}
	if !d.tagOK(n, path) {
		return "", false, false
	}
	s, expanded, err := expandEnv(n.Value, d.lookup)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return "", false, false
	}
	if expanded {
		d.templates[path] = n.Value
	}
	return s, expanded, true
}

func (d *decoder) tagOK(n *yaml.Node, path string) bool {
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!merge":
		return true
	}
	d.errorf(n, path, "YAML tag %s is not supported here; remove it", n.Tag)
	return false
}

// show is how a scalar's value appears in a message: quoted, or, when it
// came from the environment, as the reference (the value is never printed).
func show(n *yaml.Node, s string, expanded bool) string {
	if expanded {
		return fmt.Sprintf("the value of %q", n.Value)
	}
	return strconv.Quote(s)
}

func quoted(n *yaml.Node) bool { return n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 }

func (d *decoder) decodeInt(n *yaml.Node, v reflect.Value, path string) {
	s, expanded, ok := d.scalar(n, path, "a whole number")
	if !ok {
		return
	}
	if !expanded && quoted(n) {
		d.errorf(n, path, "%s is a string; write the number without quotes", show(n, s, expanded))
		return
	}
	i, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			d.errorf(n, path, "%s is too large for this field", show(n, s, expanded))
			return
		}
		d.errorf(n, path, "%s is not a whole number (write digits only, e.g. 16)", show(n, s, expanded))
		return
	}
	v.SetInt(i)
}

func (d *decoder) decodeBool(n *yaml.Node, v reflect.Value, path string) {
	s, expanded, ok := d.scalar(n, path, "true or false")
	if !ok {
		return
	}
	if !expanded && quoted(n) {
		d.errorf(n, path, "%s is a string; write true or false without quotes", show(n, s, expanded))
		return
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		v.SetBool(true)
	case "false":
		v.SetBool(false)
	default:
		d.errorf(n, path, "%s is not a boolean (write true or false)", show(n, s, expanded))
	}
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	s, expanded, ok := d.scalar(n, path, "a duration")
	if !ok {
		return
	}
	if !expanded && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		d.errorf(n, path, "%s has no unit (write a Go duration like %q)", n.Value, n.Value+"s")
		return
	}
	dur, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.errorf(n, path, "%s is not a duration (use Go syntax like \"5s\", \"1m30s\")", show(n, s, expanded))
		return
	}
	v.SetInt(int64(dur))
}

// pair is one key: value entry of a mapping, after merge keys are resolved.
type pair struct {
	key   string
	k, v  *yaml.Node
	where string // "" for an explicit key, else the merged anchor
}

// pairs lists the entries of a mapping node. Keys merged in with "<<" give
// way to explicit keys; an explicit key written twice is an error naming
// both lines.
func (d *decoder) pairs(n *yaml.Node, path string) []pair { return d.mergedPairs(n, path, 0) }

// maxMergeDepth bounds merges of merges; it also stops a mapping that
// merges itself ("a: &a {<<: *a}") from recursing forever.
const maxMergeDepth = 8

func (d *decoder) mergedPairs(n *yaml.Node, path string, depth int) []pair {
	if depth > maxMergeDepth {
		d.errorf(n, path, "merge keys (<<) nest deeper than %d levels, or a mapping merges itself", maxMergeDepth)
		d.stopped = true
		return nil
	}
	var explicit, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, ok := d.enter(n.Content[i])
		if !ok {
			return nil
		}
		val := n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "a key must be a plain name, not %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(val, path, depth+1)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, join(path, k.Value), "%q is written twice in this mapping (first at line %d); keep one", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		explicit = append(explicit, pair{key: k.Value, k: k, v: val})
	}
	for _, p := range merged {
		if _, ok := seen[p.key]; !ok {
			seen[p.key] = p.k
			explicit = append(explicit, p)
		}
	}
	return explicit
}

// mergePairs resolves the value of a "<<" merge key: one mapping or a list
// of mappings, earlier ones winning.
func (d *decoder) mergePairs(val *yaml.Node, path string, depth int) []pair {
	val, ok := d.enter(val)
	if !ok {
		return nil
	}
	switch val.Kind {
	case yaml.MappingNode:
		return d.mergedPairs(val, path, depth)
	case yaml.SequenceNode:
		var out []pair
		for _, m := range val.Content {
			m, ok := d.enter(m)
			if !ok {
				return nil
			}
			if m.Kind != yaml.MappingNode {
				d.errorf(m, path, "a merge key (<<) takes mappings, not %s", describe(m))
				continue
			}
			out = append(out, d.mergedPairs(m, path, depth)...)
		}
		return out
	}
	d.errorf(val, path, "a merge key (<<) takes a mapping or a list of mappings, not %s", describe(val))
	return nil
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected %s (a mapping of field: value), got %s", noun(t), describe(n))
		return
	}
	fs := fieldsOf(t)
	for _, p := range d.pairs(n, path) {
		fp := join(path, p.key)
		if t == reflect.TypeFor[Config]() && (p.key == "$schema" || strings.HasPrefix(p.key, "x-")) {
			continue // the JSON Schema for editors; x-* holds YAML anchors
		}
		f, ok := fs.byName[p.key]
		if !ok {
			d.errorf(p.k, fp, "%s", unknownField(p.key, t))
			continue
		}
		d.decodeValue(p.v, v.FieldByIndex(f.index), fp)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list (one item per line, starting with \"- \"), got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decodeValue(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		if d.stopped {
			break
		}
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping of name: value, got %s", describe(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	for _, p := range d.pairs(n, path) {
		fp := join(path, p.key)
		e := reflect.New(v.Type().Elem()).Elem()
		d.decodeValue(p.v, e, fp)
		d.pos[fp] = posOf(p.k) // errors about an entry point at its key
		m.SetMapIndex(reflect.ValueOf(p.key), e)
	}
	v.Set(m)
}

// decodePattern stores an event pattern, written as a mapping or as a
// string of JSON, as compact JSON, recording where each key of it is.
func (d *decoder) decodePattern(n *yaml.Node, v reflect.Value, path string) {
	var buf bytes.Buffer
	switch n.Kind {
	case yaml.MappingNode:
		d.patternValues = 0
		if !d.patternJSON(&buf, n, path, 0) {
			return
		}
	case yaml.ScalarNode:
		s, _, ok := d.scalar(n, path, "an event pattern")
		if !ok {
			return
		}
		if err := json.Compact(&buf, []byte(s)); err != nil {
			d.errorf(n, path, "the pattern string is not valid JSON: %v (or write the pattern as a YAML mapping)", jsonErrText(err))
			return
		}
	default:
		d.errorf(n, path, "expected an event pattern (a mapping such as {source: [\"shop\"]}), got %s", describe(n))
		return
	}
	v.SetBytes(buf.Bytes())
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func (d *decoder) patternJSON(buf *bytes.Buffer, n *yaml.Node, path string, depth int) bool {
	n, ok := d.enter(n)
	if !ok {
		return false
	}
	d.pos[path] = posOf(n)
	if d.patternValues++; d.patternValues > maxPatternValues {
		d.errorf(n, path, "the pattern has more than %d keys and values (YAML aliases count each time they are used); split the rule", maxPatternValues)
		return false
	}
	if depth > maxPatternDepth {
		d.errorf(n, path, "the pattern nests deeper than %d levels", maxPatternDepth)
		return false
	}
	switch n.Kind {
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i, p := range d.pairs(n, path) {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, p.key)
			buf.WriteByte(':')
			fp := join(path, p.key)
			if !d.patternJSON(buf, p.v, fp, depth+1) {
				return false
			}
			d.pos[fp] = posOf(p.k) // errors about a pattern field point at its key
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if !d.patternJSON(buf, item, fmt.Sprintf("%s[%d]", path, i), depth+1) {
				return false
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		s, expanded, ok := d.scalar(n, path, "a value")
		if !ok {
			return false
		}
		tag := n.ShortTag()
		if expanded {
			tag = "!!str" // values from the environment are strings
		}
		switch tag {
		case "!!str":
			writeJSONString(buf, s)
		case "!!null":
			buf.WriteString("null")
		case "!!bool":
			buf.WriteString(strings.ToLower(s))
		case "!!int", "!!float":
			if jsonNumber.MatchString(s) {
				buf.WriteString(s)
				break
			}
			var x any
			if err := n.Decode(&x); err != nil {
				d.errorf(n, path, "%q is not a number JSON can hold; quote it to match a string", s)
				return false
			}
			if f, ok := x.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
				d.errorf(n, path, "%s is not a finite number; quote it to match a string", s)
				return false
			}
			b, err := json.Marshal(x)
			if err != nil {
				d.errorf(n, path, "%q is not a number JSON can hold; quote it to match a string", s)
				return false
			}
			buf.Write(b)
		default:
			d.errorf(n, path, "YAML tag %s is not supported in a pattern; remove it", n.Tag)
			return false
		}
	}
	return true
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	buf.Write(b)
}

func jsonErrText(err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return err.Error()
}

// join appends a key to a field path: "rules[0]" + "name".
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parent strips the last key or index from a field path.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// fieldInfo describes the struct fields the loader accepts, by their JSON
// (and YAML) key.
type fieldInfo struct {
	names  []string
	byName map[string]field
}

type field struct {
	index []int
}

var fieldCache sync.Map // reflect.Type -> *fieldInfo

func fieldsOf(t reflect.Type) *fieldInfo {
	if fi, ok := fieldCache.Load(t); ok {
		return fi.(*fieldInfo)
	}
	fi := &fieldInfo{byName: map[string]field{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fi.names = append(fi.names, name)
		fi.byName[name] = field{index: sf.Index}
	}
	fieldCache.Store(t, fi)
	return fi
}

// nouns name the model's types the way the docs do.
var nouns = map[reflect.Type]string{
	reflect.TypeFor[Config](): "the top level of the config",
	reflect.TypeFor[Ingest](): "ingest",
	reflect.TypeFor[Bus]():    "a bus",
	reflect.TypeFor[Rule]():   "a rule",
	reflect.TypeFor[Target](): "a target",
	reflect.TypeFor[Retry]():  "retry",
}

func noun(t reflect.Type) string {
	if s, ok := nouns[t]; ok {
		return s
	}
	return strings.ToLower(t.Name())
}

// unknownField explains a key that t has no field for: a close spelling, or
// the type it belongs to, or the list of fields t has.
func unknownField(key string, t reflect.Type) string {
	fs := fieldsOf(t)
	msg := fmt.Sprintf("unknown field %q in %s", key, noun(t))
	if s := closest(key, fs.names); s != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", s)
	}
	for _, other := range []reflect.Type{reflect.TypeFor[Config](), reflect.TypeFor[Ingest](), reflect.TypeFor[Bus](), reflect.TypeFor[Rule](), reflect.TypeFor[Target](), reflect.TypeFor[Retry]()} {
		if other == t {
			continue
		}
		if _, ok := fieldsOf(other).byName[key]; ok {
			return msg + fmt.Sprintf(" (%q is a field of %s; check the indentation)", key, noun(other))
		}
	}
	return msg + "; its fields are " + strings.Join(fs.names, ", ")
}

// closest returns the candidate nearest to s when it is close enough to be a
// likely typo, else "".
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if strings.ToLower(c) == ls {
			return c
		}
		d := levenshtein(ls, strings.ToLower(c))
		if d < bestD && d <= max(1, len(c)/3) {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	// Optimal string alignment distance: Levenshtein plus transpositions of
	// neighbours ("kafak" is one edit from "kafka").
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
