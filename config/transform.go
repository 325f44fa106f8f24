package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/busbar/busbar/filters/transform/reshape"
)

// Transforms are compiled by filters/transform/reshape, which owns their
// languages (JSONPath, templates, expressions, masks); this file checks a
// target's transform with it and places its errors in the file.

// Spec returns the transform in the form the reshape package compiles.
func (t *Transform) Spec() reshape.Spec {
	if t == nil {
		return reshape.Spec{}
	}
	s := reshape.Spec{
		Form:     t.Form,
		Path:     t.Path,
		Constant: t.Constant,
		Paths:    t.Paths,
		Template: t.Template,
		Expr:     t.Expr,
	}
	for _, m := range t.Mask {
		s.Mask = append(s.Mask, reshape.MaskSpec{
			Path:        m.Path,
			Action:      m.Action,
			Replacement: m.Replacement,
			Key:         m.Key,
			KeepFirst:   m.KeepFirst,
			KeepLast:    m.KeepLast,
		})
	}
	return s
}

// FormOf returns the transform's form: form when set, else that of the
// field set, else "whole" (also for a nil transform).
func (t *Transform) FormOf() string {
	s := t.Spec()
	return s.FormOf()
}

// clone returns a deep copy of t (nil for nil).
func (t *Transform) clone() *Transform {
	if t == nil {
		return nil
	}
	out := *t
	if t.Constant != nil {
		c := *t.Constant
		out.Constant = &c
	}
	out.Paths = maps.Clone(t.Paths)
	out.Mask = slices.Clone(t.Mask)
	for i := range out.Mask {
		if r := out.Mask[i].Replacement; r != nil {
			c := *r
			out.Mask[i].Replacement = &c
		}
	}
	return &out
}

// hideKeys replaces hash keys that did not come from an ${ENV} reference
// (whose reference Redacted already put back) with RedactedValue.
func (t *Transform) hideKeys(path string, templates map[string]string) {
	if t == nil {
		return
	}
	for i := range t.Mask {
		kp := fmt.Sprintf("%s.mask[%d].key", path, i)
		if _, ok := templates[kp]; !ok && t.Mask[i].Key != "" {
			t.Mask[i].Key = RedactedValue
		}
	}
}

// transform compiles a target's transform and reports every problem at its
// field, inside the field's text when the file shows it verbatim. path is
// "" for a transform read alone by ParseTransform.
func (v *validator) transform(path string, t *Transform) {
	if t == nil || v.isBad(path) {
		return
	}
	_, err := reshape.Compile(t.Spec(), reshape.Options{})
	var errs reshape.Errors
	if err != nil && !errors.As(err, &errs) {
		v.add(path, "invalid transform: %v", err)
		return
	}
	for _, e := range errs {
		fp := join(path, e.Field)
		if e.Line > 0 {
			if p, ok := v.inValue(fp, e.Line, e.Column); ok {
				v.addAt(p, fp, "%s", e.Msg)
				continue
			}
			v.add(fp, "at line %d, column %d of the value: %s", e.Line, e.Column, e.Msg)
			continue
		}
		v.add(fp, "%s", e.Msg)
	}
	// In a config file a hash key must be a reference, so that it is never
	// printed (Redacted shows the reference) nor committed with the file. A
	// transform tried out alone (busbar test-transform) may hold one.
	if path == "" || v.src == nil {
		return
	}
	for i, m := range t.Mask {
		kp := fmt.Sprintf("%s.mask[%d].key", path, i)
		if _, ref := v.templates[kp]; m.Key != "" && !ref {
			v.add(kp, "write the hash key as an environment variable reference (key: ${PII_HASH_KEY}), not in the file")
		}
	}
}

// ParseTransform reads one transform — what a target's transform: holds —
// from YAML or JSON, the way Load reads a config: ${ENV} references
// expanded with lookup (nil: none are set), errors as an ErrorList with
// file:line:col and field paths relative to the transform ("template",
// "mask[0].path"). busbar test-transform and POST /v1/test-transform use it.
func ParseTransform(data []byte, filename string, lookup func(string) (string, bool)) (*Transform, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	fileErr := func(p Pos, format string, args ...any) error {
		return ErrorList{{File: filename, Pos: p, Msg: fmt.Sprintf(format, args...)}}
	}
	if len(data) > MaxFileBytes {
		return nil, fileErr(Pos{}, "the transform is larger than %d MiB", MaxFileBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if n := structureCount(data); n > maxStructure {
		return nil, fileErr(Pos{}, "the transform has about %d values, more than the %d a config may hold", n, maxStructure)
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
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, fileErr(Pos{}, "the file holds no transform (write a mapping such as {form: data})")
	}
	n := doc.Content[0]
	d := newDecoder(filename, lookup)
	t := &Transform{}
	d.decodeValue(n, reflect.ValueOf(t).Elem(), "")
	if !d.stopped {
		v := &validator{file: filename, pos: d.pos, bad: d.bad, templates: d.templates, strings: d.strings, src: data}
		v.transform("", t)
		d.errs = append(d.errs, v.errs...)
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return t, nil
}
