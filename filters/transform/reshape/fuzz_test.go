package reshape

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzApply runs every form and mask over arbitrary input: no panic, errors
// wrap ErrFailed, and JSON outputs are valid JSON.
func FuzzApply(f *testing.F) {
	f.Add([]byte(order))
	f.Add([]byte(`{"data":{"x":"\u00e9\"","y":[1,{"x":2}]},"x":null}`))
	f.Add([]byte(`{"data":"s","datacontenttype":"text/plain"}`))
	f.Add([]byte(`{"data" : { "x" : [ 1 , 2 ] } , "id" : "\ud800" }`))
	key := "0123456789abcdef"
	specs := []Spec{
		{Form: FormData},
		{Path: "$.data.x"},
		{Path: "$..x"},
		{Paths: map[string]string{"x": "$.data.x", "y": "$.data.y[*]", "z": "$..x"}, Template: `{"x": <x>, "s": "<x> <y> <z>", "y": [<y>, <z>], "e": <busbar.event>}`},
		{Paths: map[string]string{"x": "$.data.x"}, Template: `x=<x> e=<busbar.event.json>`},
		{Expr: `{"x": data?.x, "y": data?.y, "id": id}`},
		{Expr: `data`},
		{Expr: `[data.x, data.y.z, data["a b"], data.x?.y]`},
		{Mask: []MaskSpec{{Path: "$..x", Action: ActionRemove}, {Path: "$.data.y[*]", Action: ActionPartial, KeepFirst: 1}}},
		{Form: FormData, Mask: []MaskSpec{{Path: "$..x", Action: ActionHash, Key: key}, {Path: "$.data.*", Action: ActionRedact}}},
	}
	progs := make([]*Program, len(specs))
	for i, s := range specs {
		p, err := Compile(s, Options{})
		if err != nil {
			f.Fatal(err)
		}
		progs[i] = p
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		for i, p := range progs {
			body, ct, err := p.Apply(ev, Meta{Rule: "r"})
			if err != nil {
				if !errors.Is(err, ErrFailed) {
					t.Fatalf("spec %d: %v", i, err)
				}
				continue
			}
			if (ct == ContentTypeJSON || ct == ContentTypeCloudEvent && len(specs[i].Mask) > 0 && json.Valid(ev)) && !json.Valid(body) {
				t.Fatalf("spec %d on %q: invalid JSON %q", i, ev, body)
			}
		}
	})
}

// FuzzTemplate compiles arbitrary templates: no panic, and a JSON template
// renders valid JSON.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{`{"a": <x>, "b": "<x> y"}`, `[<x>, 1, "<busbar.bus>"]`, `"<x>"`, `text <x>`, `{"a":{"b":[<x>]}}`} {
		f.Add(s)
	}
	paths := map[string]string{"x": "$.data"}
	f.Fuzz(func(t *testing.T, tpl string) {
		p, err := Compile(Spec{Paths: paths, Template: tpl}, Options{})
		if err != nil {
			return
		}
		for _, ev := range []string{order, `{"data":"a\"b\n"}`, `{}`} {
			body, ct, err := p.Apply([]byte(ev), Meta{Bus: "q\""})
			if err != nil {
				t.Fatalf("%q: %v", tpl, err)
			}
			if ct == ContentTypeJSON && !json.Valid(body) {
				t.Fatalf("%q on %s: invalid JSON %q", tpl, ev, body)
			}
		}
	})
}
