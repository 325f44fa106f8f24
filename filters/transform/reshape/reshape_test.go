package reshape

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
)

const order = `{"specversion":"1.0","id":"e-1","source":"shop","type":"order.created","time":"2026-03-01T10:00:00Z","busbaringesttime":"2026-03-01T10:00:01.5Z","data":{"orderId":"SO-1","amount":12345678901234567890,"price":0.1000000000000000055511,"qty":3,"order-id":"dash","customer":{"phone":"13812345678","name":"Li Lei"},"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}}`

func mustCompile(t *testing.T, s Spec) *Program {
	t.Helper()
	p, err := Compile(s, Options{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func apply(t *testing.T, s Spec, ev string) (string, string) {
	t.Helper()
	body, ct, err := mustCompile(t, s).Apply([]byte(ev), Meta{Rule: "r", Bus: "b"})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return string(body), ct
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string // "" when valid; else a part of the message
		off  int
	}{
		{src: "$.data.order"},
		{src: "$['data']['odd key'][0]"},
		{src: "$.data.order-id"},
		{src: "$.data.a/b"},
		{src: "$..phone"},
		{src: "$.data.items[*].sku"},
		{src: "$.data.items[-1]"},
		{src: "$.data.*"},
		{src: "data.x", want: "starts with $", off: 0},
		{src: "", want: "empty", off: -1},
		{src: "$.a b", want: "invalid JSONPath", off: 3},
		{src: "$.a[", want: "not terminated", off: 4},
		{src: "$.a[?(@.x > 1)]", want: "filters", off: -1},
		{src: "$.a[1:2]", want: "slices", off: -1},
		{src: "$.a[0,1]", want: "unions", off: -1},
		{src: "$..", want: "must be followed", off: 2},
	} {
		_, err := ParsePath(tc.src)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.src, err)
			}
			continue
		}
		var pe *pathError
		if !errors.As(err, &pe) || !strings.Contains(pe.Msg, tc.want) || pe.Offset != tc.off {
			t.Errorf("%q: got %#v, want %q at %d", tc.src, err, tc.want, tc.off)
		}
	}
}

func TestPathValues(t *testing.T) {
	ev := `{"a":{"b-c":1,"x":[10,20,30],"o":{"k":"v"}},"n":null, "s" : "t"}`
	for path, want := range map[string]string{
		"$.a.b-c":     `1`,
		"$.a.x[-1]":   `30`,
		"$.a.x[-4]":   `null`,
		"$.a.x[3]":    `null`,
		"$.a.x[*]":    `[10,20,30]`,
		"$.a.*":       `[1,[10,20,30],{"k":"v"}]`,
		"$..k":        `["v"]`,
		"$..nope":     `[]`,
		"$.n":         `null`,
		"$.s":         `"t"`,
		"$.s.deeper":  `null`,
		"$['a']['o']": `{"k":"v"}`,
	} {
		got, _ := apply(t, Spec{Path: path}, ev)
		if got != want {
			t.Errorf("%s: got %s, want %s", path, got, want)
		}
	}
}

func TestMaskRemove(t *testing.T) {
	for _, tc := range []struct{ path, ev, want string }{
		{"$.a", `{"a":1,"b":2,"c":3}`, `{"b":2,"c":3}`},
		{"$.b", `{"a":1,"b":2,"c":3}`, `{"a":1,"c":3}`},
		{"$.c", `{"a":1,"b":2,"c":3}`, `{"a":1,"b":2}`},
		{"$.*", `{"a":1,"b":2,"c":3}`, `{}`},
		{"$.x[1]", `{"x":[1,2,3]}`, `{"x":[1,3]}`},
		{"$.x[*]", `{"x":[1, 2, 3]}`, `{"x":[]}`},
		{"$.x[-1]", `{"x":[1,2,3]}`, `{"x":[1,2]}`},
		{"$..p", `{"p":1,"q":{"p":2,"r":[{"p":3,"s":4},{"p":{"p":5}}]}}`, `{"q":{"r":[{"s":4},{}]}}`},
		{"$.x[*].p", `{ "x" : [ {"p":1 , "q":2} , {"q":3, "p":4} ] }`, `{ "x" : [ {"q":2} , {"q":3} ] }`},
		{"$.nope", `{"a":1}`, `{"a":1}`},
	} {
		got, _ := apply(t, Spec{Mask: []MaskSpec{{Path: tc.path, Action: ActionRemove}}}, tc.ev)
		if got != tc.want {
			t.Errorf("remove %s from %s: got %s, want %s", tc.path, tc.ev, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("remove %s: invalid JSON %s", tc.path, got)
		}
	}
	// Two members of one object, every combination.
	ev := `{"a":1,"b":2,"c":3,"d":4}`
	keys := []string{"a", "b", "c", "d"}
	for set := 0; set < 16; set++ {
		var ms []MaskSpec
		want := map[string]any{}
		for i, k := range keys {
			if set&(1<<i) != 0 {
				ms = append(ms, MaskSpec{Path: "$." + k, Action: ActionRemove})
			} else {
				want[k] = float64(i + 1)
			}
		}
		got, _ := apply(t, Spec{Mask: ms}, ev)
		var m map[string]any
		if err := json.Unmarshal([]byte(got), &m); err != nil || len(m) != len(want) {
			t.Errorf("set %04b: %s", set, got)
		}
	}
}

func TestMaskValues(t *testing.T) {
	key := "k-0123456789abcdef"
	ev := `{"data":{"phone":"13812345678","short":"ab","n":12345678901234567890,"o":{"x":1},"u":"张三丰","e":"a\"b"}}`
	s := Spec{Form: FormData, Mask: []MaskSpec{
		{Path: "$.data.phone", Action: ActionPartial, KeepFirst: 3, KeepLast: 4},
		{Path: "$.data.short", Action: ActionPartial, KeepFirst: 1, KeepLast: 1},
		{Path: "$.data.n", Action: ActionPartial, KeepLast: 2},
		{Path: "$.data.o", Action: ActionPartial, KeepLast: 2},
		{Path: "$.data.u", Action: ActionPartial, KeepFirst: 1},
		{Path: "$.data.e", Action: ActionHash, Key: key},
	}}
	got, _ := apply(t, s, ev)
	var m map[string]string
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(got, err)
	}
	want := map[string]string{"phone": "138****5678", "short": "**", "n": "******************90", "o": "REDACTED", "u": "张**"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: got %q, want %q", k, m[k], v)
		}
	}
	// hash: HMAC-SHA256 of the text, joinable across events and fields.
	h1 := m["e"]
	got2, _ := apply(t, Spec{Form: FormData, Mask: []MaskSpec{{Path: "$.data.*", Action: ActionHash, Key: key}}}, `{"data":{"x":"a\"b","y":"a\u0022b"}}`)
	var m2 map[string]string
	_ = json.Unmarshal([]byte(got2), &m2)
	if len(h1) != 64 || m2["x"] != h1 || m2["y"] != h1 {
		t.Errorf("hashes differ: %q %q %q", h1, m2["x"], m2["y"])
	}
}

func TestTemplateJSON(t *testing.T) {
	paths := map[string]string{
		"id": "$.data.orderId", "amount": "$.data.amount", "price": "$.data.price",
		"customer": "$.data.customer", "skus": "$.data.items[*].sku", "missing": "$.data.nope",
		"dash": "$.data.order-id",
	}
	got, ct := apply(t, Spec{Paths: paths, Template: `{
		"id": <id>, "amount": <amount>, "price": <price>, "customer": <customer>,
		"skus": <skus>, "missing": <missing>, "text": "<id>: <customer> [<missing>] <dash> <nope>",
		"rule": <busbar.rule-name>, "bus": "<busbar.bus>", "at": <busbar.event.ingestion-time>,
		"static": [1, true, null, "x"]
	}`}, order)
	want := `{"id":"SO-1","amount":12345678901234567890,"price":0.1000000000000000055511,"customer":{"phone":"13812345678","name":"Li Lei"},"skus":["a","b"],"missing":null,"text":"SO-1: {\"phone\":\"13812345678\",\"name\":\"Li Lei\"} [] dash <nope>","rule":"r","bus":"b","at":"2026-03-01T10:00:01.5Z","static":[1,true,null,"x"]}`
	if got != want || ct != ContentTypeJSON {
		t.Errorf("got %s (%s)\nwant %s", got, ct, want)
	}
}

func TestTemplateErrors(t *testing.T) {
	paths := map[string]string{"id": "$.id"}
	for tpl, want := range map[string]string{
		`{<id>: 1}`:              "cannot be an object key",
		`{"<id>": 1}`:            "cannot be used in an object key",
		`{"a": <nope>}`:          "does not define",
		`{"a": 1,}`:              "trailing comma",
		`{"a": "x` + "\n" + `"}`: "line break",
		`{"a": 1} trailing`:      "continues after",
		`{"a": tru}`:             "expected a JSON value",
		"   ":                    "empty",
	} {
		_, err := Compile(Spec{Paths: paths, Template: tpl}, Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", tpl, err, want)
		}
	}
	// Text that merely starts with [ or " stays text.
	for _, tpl := range []string{`[ALERT] order <id>`, `"Quoted" <id>`, `<id>`} {
		got, ct := apply(t, Spec{Paths: paths, Template: tpl}, order)
		if ct != ContentTypeText || !strings.Contains(got, "e-1") {
			t.Errorf("%q: %s (%s)", tpl, got, ct)
		}
	}
}

func TestSpecErrors(t *testing.T) {
	c := "x"
	for _, tc := range []struct {
		s     Spec
		field string
		want  string
	}{
		{Spec{Form: "templte"}, "form", "not a transform form"},
		{Spec{Form: FormPart}, "path", "needs path"},
		{Spec{Form: FormData, Path: "$.x"}, "path", "belongs to the part form"},
		{Spec{Path: "$.x", Expr: "1"}, "path", "belongs to the part form"},
		{Spec{Constant: &c, Template: "x"}, "constant", "belongs to the constant form"},
		{Spec{Paths: map[string]string{"busbar.x": "$.id"}, Template: "x"}, "paths.busbar.x", "reserved"},
		{Spec{Paths: map[string]string{"a b": "$.id"}, Template: "x"}, "paths.a b", "not a variable name"},
		{Spec{Paths: map[string]string{"a": "id"}, Template: "x"}, "paths.a", "starts with $"},
		{Spec{Expr: "data.x +"}, "expr", "unexpected"},
		{Spec{Expr: "nope.x"}, "expr", "unknown name nope"},
		{Spec{Mask: []MaskSpec{{Path: "$", Action: "remove"}}}, "mask[0].path", "whole event"},
		{Spec{Mask: []MaskSpec{{Path: "$.x", Action: "blur"}}}, "mask[0].action", "not a mask action"},
		{Spec{Mask: []MaskSpec{{Path: "$.x", Action: "hash"}}}, "mask[0].key", "needs key"},
		{Spec{Mask: []MaskSpec{{Path: "$.x", Action: "hash", Key: "short"}}}, "mask[0].key", "at least 16"},
		{Spec{Mask: []MaskSpec{{Path: "$.x", Action: "redact", KeepFirst: 2}}}, "mask[0]", "partial action only"},
		{Spec{Mask: []MaskSpec{{Path: "$.x", Action: "partial", KeepLast: -1}}}, "mask[0].keep_last", "out of range"},
	} {
		_, err := Compile(tc.s, Options{})
		var errs Errors
		if !errors.As(err, &errs) {
			t.Errorf("%+v: got %v", tc.s, err)
			continue
		}
		found := false
		for _, e := range errs {
			found = found || e.Field == tc.field && strings.Contains(e.Msg, tc.want)
		}
		if !found {
			t.Errorf("%+v: got %v, want %s: …%s…", tc.s, err, tc.field, tc.want)
		}
	}
	_, err := Compile(Spec{Expr: "1 +\n  nope"}, Options{})
	var errs Errors
	if !errors.As(err, &errs) || errs[0].Line != 2 || errs[0].Column != 3 {
		t.Errorf("expr position: %#v", err)
	}
	_, err = Compile(Spec{Paths: map[string]string{"a": "$.id"}, Template: "{\n  \"x\": <b>}"}, Options{})
	if !errors.As(err, &errs) || errs[0].Line != 2 || errs[0].Column != 8 {
		t.Errorf("template position: %v", err)
	}
}

// TestExprPartialDecode checks that decoding only what an expression reads
// gives what decoding all of data gives.
func TestExprPartialDecode(t *testing.T) {
	for _, src := range []string{
		`{"id": data.orderId, "amount": data.amount, "phone": data.customer.phone}`,
		`data.customer`,
		`data.customer.phone + " " + data.customer?.name`,
		`data["customer"]["name"]`,
		`data.orderId.x`,
		`data.items[0].sku`,
		`len(data.items) + data.qty`,
		`map(data.items, .sku)`,
		`data`,
		`sort(keys(data.customer))`,
		`jsonpath(data, "$.customer.phone")`,
		`{"n": data.nope.deeper, "t": time, "e": extensions.busbaringesttime, "s": source}`,
	} {
		p, err := compileExpr(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, gerr := p.run([]byte(order), Meta{})
		full, err := compileExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		full.prog, _ = expr.Compile(src, exprOptions...)    // unpatched
		full.data, full.chains, full.fields = nil, nil, nil // all of data, a map
		want, werr := full.run([]byte(order), Meta{})
		g, _ := p.encode(nil, got)
		w, _ := full.encode(nil, want)
		if werr != nil && gerr == nil && strings.Contains(string(g), "null") {
			continue // a chain through a missing member is null, not an error (documented)
		}
		if string(g) != string(w) || (gerr == nil) != (werr == nil) {
			t.Errorf("%s: partial %s (%v), full %s (%v)", src, g, gerr, w, werr)
		}
	}
}

// TestExprMapLiteral checks that a map literal at the root, compiled into
// the list of its values, is written as the map it stands for.
func TestExprMapLiteral(t *testing.T) {
	for src, literal := range map[string]bool{
		`{}`: true,
		`{"z": data.orderId, "a": source, "m": {"y": 1, "b": [2, data.qty]}, "Z": nil, "é": rule}`: true,
		`({"b": data.customer.name, "a": data.customer})`:                                          true,
		`{"q": data.qty * 2, "x": 1 / 0.0 > 0, "id": id + "-" + type}`:                             true,
		`{"k": 1, "k": 2}`:   false, // duplicate keys: a map as written
		`{("a" + "b"): 1}`:   false,
		`{"a": 1}.a`:         false,
		`[{"b": 1, "a": 2}]`: false,
	} {
		p, err := compileExpr(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if (p.fields != nil) != literal {
			t.Errorf("%s: compiled to a list: %v, want %v", src, p.fields != nil, literal)
		}
		got, gerr := p.run([]byte(order), Meta{Rule: "r", Bus: "b"})
		g, _ := p.encode(nil, got)
		full, _ := compileExpr(src)
		full.prog, _ = expr.Compile(src, exprOptions...) // unpatched
		full.data, full.chains, full.fields = nil, nil, nil
		want, werr := full.run([]byte(order), Meta{Rule: "r", Bus: "b"})
		w, _ := full.encode(nil, want)
		if string(g) != string(w) || (gerr == nil) != (werr == nil) {
			t.Errorf("%s: list %s (%v), map %s (%v)", src, g, gerr, w, werr)
		}
	}
}

func TestExprOutputs(t *testing.T) {
	for src, want := range map[string]string{
		`{"amount": data.amount, "price": data.price, "qty": data.qty * 2, "half": data.qty / 2}`: `{"amount":12345678901234567890,"half":1.5,"price":0.1000000000000000055511,"qty":6}`,
		`[id, rule, bus, nil, true, 1.5e300, 1e-7]`:                                               `["e-1","r","b",null,true,1.5e+300,1e-7]`,
		`time.Year()`:  `2026`,
		`now() > time`: `true`,
	} {
		got, ct := apply(t, Spec{Expr: src}, order)
		if got != want || ct != ContentTypeJSON {
			t.Errorf("%s: got %s (%s), want %s", src, got, ct, want)
		}
	}
	_, _, err := mustCompile(t, Spec{Expr: `data.orderId * 2`}).Apply([]byte(order), Meta{})
	if !errors.Is(err, ErrFailed) {
		t.Errorf("runtime error: %v", err)
	}
}

func TestData(t *testing.T) {
	for _, tc := range []struct{ ev, body, ct string }{
		{`{"data":{"a":1}}`, `{"a":1}`, ContentTypeJSON},
		{`{"datacontenttype":"application/vnd.x+json","data":"s"}`, `"s"`, ContentTypeJSON},
		{`{"datacontenttype":"text/csv","data":"a,b\nc"}`, "a,b\nc", "text/csv"},
		{`{"datacontenttype":"image/png","data_base64":"aGk="}`, "hi", "image/png"},
		{`{"data_base64":"aGk="}`, "hi", "application/octet-stream"},
		{`{"id":"x"}`, `null`, ContentTypeJSON},
	} {
		got, ct := apply(t, Spec{Form: FormData}, tc.ev)
		if got != tc.body || ct != tc.ct {
			t.Errorf("%s: got %q (%s)", tc.ev, got, ct)
		}
	}
}

func TestApplyBadEvents(t *testing.T) {
	specs := []Spec{
		{Form: FormData}, {Path: "$.data.x"}, {Paths: map[string]string{"x": "$.data.x"}, Template: `{"x": <x>, "e": <busbar.event.json>}`},
		{Expr: `data`}, {Mask: []MaskSpec{{Path: "$..x", Action: ActionRedact}}},
	}
	for _, ev := range []string{``, `[]`, `{`, `{"data":{"x":tru}}`, `{"data":{"x":"\q"}}`, `{"data":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`, `{"data":{"x":1}`} {
		for _, s := range specs {
			body, _, err := mustCompile(t, s).Apply([]byte(ev), Meta{})
			if err == nil && s.FormOf() != FormWhole && !json.Valid(body) {
				t.Errorf("%+v on %.40q: invalid output %s", s, ev, body)
			}
			if err != nil && !errors.Is(err, ErrFailed) {
				t.Errorf("error does not wrap ErrFailed: %v", err)
			}
		}
	}
}

func TestMaxBody(t *testing.T) {
	p, err := Compile(Spec{Template: strings.Repeat(`<busbar.event.json>`, 100)}, Options{MaxBodyBytes: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Apply([]byte(order), Meta{}); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("got %v", err)
	}
}

func TestUnescapeEscape(t *testing.T) {
	in := `a\"b\\c\/d\n\t\u00e9\ud83d\ude00\ud800x`
	got := string(unescape(nil, []byte(in)))
	if got != "a\"b\\c/d\n\té😀\uFFFDx" {
		t.Errorf("unescape: %q", got)
	}
	esc := string(appendString(nil, "q\"\\\n\x01\u2028é"))
	var back string
	if err := json.Unmarshal([]byte(esc), &back); err != nil || back != "q\"\\\n\x01\u2028é" {
		t.Errorf("escape: %s %v", esc, err)
	}
}

// TestTrieMatchesPaths: reading simple paths in one pass (a template) gives
// what reading each alone (the part form) gives.
func TestTrieMatchesPaths(t *testing.T) {
	evs := []string{
		order,
		`{"a":{"b":1,"b":2,"c":[{"d":1},{"d":2}]},"a":{"b":3},"e":"x"}`,
		`{"a":[[1,2],[3,[4,5]]],"b\u0022":{"c":1},"a2":{}}`,
		`{"a":"not an object","c":[]}`,
	}
	paths := []string{"$.a", "$.a.b", "$.a.c[1].d", "$.a.c[0]", "$.a[1][1][0]", "$.a[0]", "$['b\"'].c", "$.e", "$.c[0]", "$.data.customer.name", "$.data.items[1].sku", "$.data", "$.data.orderId", "$.a.b.x", "$.a2.z"}
	vars := map[string]string{}
	tpl := "{"
	for i, p := range paths {
		name := fmt.Sprintf("v%d", i)
		vars[name] = p
		if i > 0 {
			tpl += ","
		}
		tpl += fmt.Sprintf(`"%s": <%s>`, name, name)
	}
	tpl += "}"
	for _, ev := range evs {
		got, _ := apply(t, Spec{Paths: vars, Template: tpl}, ev)
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Fatal(got, err)
		}
		for i, p := range paths {
			want, _ := apply(t, Spec{Path: p}, ev)
			if string(m[fmt.Sprintf("v%d", i)]) != want {
				t.Errorf("%s in %.40s: template %s, part %s", p, ev, m[fmt.Sprintf("v%d", i)], want)
			}
		}
	}
}

// TestStringScanners compares the eight-bytes-at-a-time string scanners
// with encoding/json on strings with special bytes at every offset.
func TestStringScanners(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\"\\\x01\x1f é/nu0")
	for n := 0; n < 20000; n++ {
		body := make([]byte, r.IntN(40))
		for i := range body {
			body[i] = alphabet[r.IntN(len(alphabet))]
		}
		s := append(append([]byte{'"'}, body...), '"')
		s = append(s, []byte(`,"tail"`)...)
		end, err := checkString(s, 0)
		var dec json.RawMessage
		valid := false
		if err == nil {
			valid = json.Unmarshal(s[:end], &dec) == nil
		}
		// checkString accepts exactly what encoding/json accepts as a string.
		first := -1
		for k := 1; k <= len(s); k++ {
			if json.Valid(s[:k]) {
				first = k
				break
			}
		}
		if (err == nil) != (first > 0) || err == nil && (end != first || !valid) {
			t.Fatalf("%q: checkString %d %v, encoding/json ends at %d", s, end, err, first)
		}
		// stringEnd finds the same end on valid strings.
		if err == nil {
			e2, esc, err2 := stringEnd(s, 0)
			if err2 != nil || e2 != end || esc != (bytes.IndexByte(s[1:end-1], '\\') >= 0) {
				t.Fatalf("%q: stringEnd %d %v %v, want %d", s, e2, esc, err2, end)
			}
		}
	}
}
