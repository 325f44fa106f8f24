package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

const (
	// MaxFileBytes is the largest config file Load and Parse accept.
	MaxFileBytes = 8 << 20
	// maxStructure bounds the line breaks and the YAML/JSON structure
	// characters (":", "-", ",", "[", "{", "?") of a file, an upper bound of
	// its number of values, checked before parsing: the YAML parser spends
	// about 250 bytes per value, so 8 MiB of "- a" lines would otherwise cost
	// half a gigabyte.
	maxStructure = 400_000
)

// Load reads the config file at path (YAML, or JSON when it ends in .json or
// starts with "{"), expands ${ENV} references, validates it and applies the
// defaults. Any problem in the file comes back as an ErrorList naming every
// one with its file:line:column and field path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse is Load for a config already in memory; filename names it in errors
// and its extension ".json" selects strict JSON.
func Parse(data []byte, filename string) (*Config, error) {
	return parse(data, filename, os.LookupEnv)
}

func parse(data []byte, filename string, lookup func(string) (string, bool)) (*Config, error) {
	fileErr := func(p Pos, format string, args ...any) error {
		return ErrorList{{File: filename, Pos: p, Msg: fmt.Sprintf(format, args...)}}
	}
	if len(data) > MaxFileBytes {
		return nil, fileErr(Pos{}, "the file is larger than %d MiB; a config this big is almost certainly not one (split generated rules into several files, or check the path)", MaxFileBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if n := structureCount(data); n > maxStructure {
		return nil, fileErr(Pos{}, "the file has about %d values, more than the %d a config may hold", n, maxStructure)
	}
	if isJSON(data, filename) {
		if err := checkJSON(data); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fileErr(offsetPos(data, se.Offset), "invalid JSON: %s", se.Error())
			}
			return nil, fileErr(Pos{}, "invalid JSON: %v", err)
		}
		data = yamlEscapes(data)
	}

	doc, err := parseYAML(data)
	if err != nil {
		return nil, yamlError(filename, err)
	}
	d := newDecoder(filename, lookup)
	c := &Config{}
	d.decodeRoot(doc, c)
	if !d.stopped {
		v := &validator{file: filename, pos: d.pos, bad: d.bad, templates: d.templates, strings: d.strings, src: data}
		v.config(c)
		d.errs = append(d.errs, v.errs...)
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	if len(d.templates) > 0 {
		c.templates = d.templates
	}
	c.ApplyDefaults()
	return c, nil
}

// isJSON reports whether data should be held to JSON syntax: its file name
// ends in .json, or it starts with "{" and is not some other known kind.
func isJSON(data []byte, filename string) bool {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".json":
		return true
	case ".yaml", ".yml":
		return false
	}
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

// checkJSON reports the first JSON syntax error in data, with its offset.
func checkJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		if err == io.EOF {
			return nil // an empty file is an empty config
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return nil
}

// yamlEscapes rewrites the escapes of valid JSON that yaml.v3 rejects: "\/"
// becomes "/", a UTF-16 surrogate pair one \U escape, a lone surrogate
// U+FFFD (what encoding/json makes of it). Columns after a rewritten escape
// on the same line shift left by one or two.
func yamlEscapes(data []byte) []byte {
	if !bytes.Contains(data, []byte(`\u`)) {
		return data
	}
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c != '\\' || i+1 >= len(data) {
			out = append(out, c)
			continue
		}
		if data[i+1] == '/' { // "\/" is JSON's, not YAML's
			out = append(out, '/')
			i++
			continue
		}
		if data[i+1] != 'u' || i+6 > len(data) {
			out = append(out, c, data[i+1]) // any other escape, kept whole
			i++
			continue
		}
		r1, ok := hex4(data[i+2 : i+6])
		switch {
		case !ok || !utf16.IsSurrogate(rune(r1)):
			out = append(out, data[i:i+6]...)
		case i+12 <= len(data) && data[i+6] == '\\' && data[i+7] == 'u':
			r2, ok2 := hex4(data[i+8 : i+12])
			if r := utf16.DecodeRune(rune(r1), rune(r2)); ok2 && r != utf8.RuneError {
				out = fmt.Appendf(out, `\U%08X`, r)
				i += 6
			} else {
				out = append(out, `\uFFFD`...)
			}
		default:
			out = append(out, `\uFFFD`...)
		}
		i += 5
	}
	return out
}

func hex4(b []byte) (uint16, bool) {
	v, err := strconv.ParseUint(string(b), 16, 16)
	return uint16(v), err == nil
}

// parseYAML parses one YAML document into a node tree. More than one
// document in a file is an error.
func parseYAML(data []byte) (doc *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil { // yaml.v3 had panics on hostile input
			doc, err = nil, fmt.Errorf("yaml: the YAML parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	doc = &yaml.Node{}
	if err := dec.Decode(doc); err != nil {
		if err == io.EOF {
			return &yaml.Node{}, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); err {
	case io.EOF:
		return doc, nil
	case nil:
		return nil, fmt.Errorf("yaml: line %d: a config file holds one YAML document; remove this \"---\" and what follows, or merge it into the first", separatorLine(data, next))
	default:
		return nil, err
	}
}

// separatorLine finds the "---" line that starts the document doc.
func separatorLine(data []byte, doc yaml.Node) int {
	line := doc.Line
	if len(doc.Content) > 0 {
		line = doc.Content[0].Line
	}
	lines := bytes.Split(data, []byte("\n"))
	for l := min(line, len(lines)); l >= 1; l-- {
		if bytes.HasPrefix(lines[l-1], []byte("---")) {
			return l
		}
	}
	return line
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a parser error into a positioned Error.
func yamlError(filename string, err error) error {
	msg := err.Error()
	var p Pos
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	hint := ""
	switch {
	case strings.Contains(msg, "found character that cannot start any token"):
		hint = " (YAML indents with spaces, never tabs; quote values that start with @ or `)"
	case strings.Contains(msg, "mapping values are not allowed"):
		hint = " (a value holding \": \" must be quoted)"
	case strings.Contains(msg, "did not find expected key"), strings.Contains(msg, "did not find expected '-'"):
		hint = " (check the indentation of this line and the one before)"
	case strings.Contains(msg, "exceeded max depth"):
		hint = " (the file nests far deeper than any config)"
	}
	return ErrorList{{File: filename, Pos: p, Msg: "invalid YAML: " + msg + hint}}
}

// structureCount counts the characters that can start a new YAML or JSON
// value, a cheap upper bound of how many nodes parsing would build.
func structureCount(data []byte) int {
	n := 0
	for _, c := range data {
		switch c {
		case ':', '-', ',', '[', '{', '?', '\n':
			n++
		}
	}
	return n
}

// offsetPos turns a byte offset into a line and column.
func offsetPos(data []byte, off int64) Pos {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	if off > 0 && col > 1 {
		col-- // the decoder reports the offset after the bad byte
	}
	return Pos{Line: line, Column: col}
}
