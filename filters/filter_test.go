package filters

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const filterEvent = `{"specversion":"1.0","id":"e1","source":"erp","type":"order.created","subject":"orders/7",` +
	`"time":"2024-05-01T10:00:00Z","datacontenttype":"application/json","tenant":"acme","traceparent":"00-ab",` +
	`"data":{"amount":250,"currency":"EUR","customer":{"tier":"GOLD","ip":"10.1.2.3"},"items":[{"sku":"A","qty":2},{"sku":"B","qty":5}]}}`

func TestFilters(t *testing.T) {
	cases := []struct {
		filter string
		want   bool
	}{
		{`source == "erp" && type startsWith "order."`, true},
		{`data.amount > 200 && data.currency == "EUR"`, true},
		{`data.amount > 300`, false},
		{`lower(data.customer.tier) == "gold"`, true},
		{`cidr(data.customer.ip, "10.0.0.0/8")`, true},
		{`cidr(data.customer.ip, "192.168.0.0/16")`, false},
		{`cidr(data.customer.ip, "not a block")`, false},
		{`jsonpath(data, "$.items[1].qty") == 5`, true},
		{`jsonpath(data, "$.items[-1].sku") == "B"`, true},
		{`len(jsonpath(data, "$.items[*].sku")) == 2`, true},
		{`jsonpath(data, "$.nope.x") == nil`, true},
		{`time < now() && now() - time > duration("1h")`, true},
		{`time.Year() == 2024 && int(time.Month()) == 5`, true},
		{`data.amount + 1`, false}, // type known only at run time: a non-bool result is false
		{`extensions.tenant == "acme" && extensions["traceparent"] startsWith "00-"`, true},
		{`extensions.missing == nil`, true},
		{`subject matches "^orders/[0-9]+$"`, true},
		{`any(data.items, .qty > 4)`, true},
		{`all(data.items, .qty > 4)`, false},
		{`data.missing.deeper > 1`, false}, // runtime error counts as false
		{`id == "e1" && specversion == "1.0" && datacontenttype == "application/json"`, true},
	}
	for _, c := range cases {
		if err := ValidateFilter(c.filter); err != nil {
			t.Errorf("ValidateFilter(%q): %v", c.filter, err)
			continue
		}
		m, err := NewMatcher([]Rule{
			{Name: "with-pattern", Pattern: []byte(`{"source":["erp"]}`), Filter: c.filter},
			{Name: "filter-only", Filter: c.filter},
			{Name: "pattern-fails", Pattern: []byte(`{"source":["crm"]}`), Filter: c.filter},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Match([]byte(filterEvent), nil)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		if c.want {
			want = []string{"with-pattern", "filter-only"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("filter %q: matched %v, want %v", c.filter, got, want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	cases := []struct {
		filter     string
		line, col  int
		msgContain string
	}{
		{`source == `, 1, 0, "unexpected token"},
		{"source == \"erp\" &&\n  type ==== \"x\"", 2, 0, ""},
		{`source`, 0, 0, "bool"},
		{`subject + "x"`, 0, 0, "bool"},
		{`source == 1`, 1, 0, "mismatched types"},
		{`nosuchvar == "x"`, 1, 1, "unknown name nosuchvar"},
		{`jsonpath(data)`, 1, 0, "not enough arguments"},
		{`  `, 0, 0, "empty"},
	}
	for _, c := range cases {
		err := ValidateFilter(c.filter)
		var fe *FilterError
		if !errors.As(err, &fe) {
			t.Errorf("ValidateFilter(%q) = %v, want *FilterError", c.filter, err)
			continue
		}
		if c.line > 0 && fe.Line != c.line {
			t.Errorf("%q: line %d, want %d (%v)", c.filter, fe.Line, c.line, err)
		}
		if c.col > 0 && fe.Column != c.col {
			t.Errorf("%q: column %d, want %d (%v)", c.filter, fe.Column, c.col, err)
		}
		if !strings.Contains(err.Error(), c.msgContain) {
			t.Errorf("%q: %q does not contain %q", c.filter, err.Error(), c.msgContain)
		}
	}
	_, err := NewMatcher([]Rule{{Name: "r1", Filter: `source ==`}})
	if err == nil || !strings.Contains(err.Error(), `rule "r1": filter at line 1`) {
		t.Errorf("NewMatcher error %v does not name the rule and position", err)
	}
}

// Filters run only after the pattern matched: events that fail every
// pattern are not decoded, so matching them allocates nothing.
func TestFilterNotRunWithoutPatternMatch(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	m, err := NewMatcher([]Rule{
		{Name: "a", Pattern: []byte(`{"source":["crm"]}`), Filter: `data.amount > 1`},
		{Name: "b", Pattern: []byte(`{"type":["x"]}`), Filter: `source == "erp"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := []byte(filterEvent)
	allocs := testing.AllocsPerRun(100, func() {
		if out, err := m.Match(ev, nil); err != nil || len(out) != 0 {
			t.Fatal(out, err)
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %.1f times per event with no pattern match, want 0", allocs)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	m, err := NewMatcher([]Rule{
		{Name: "a", Pattern: []byte(`{"source":["erp"],"data":{"items":{"sku":["B"],"qty":[{"numeric":[">",4]}]}}}`)},
		{Name: "b", Pattern: []byte(`{"data":{"customer":{"tier":[{"equals-ignore-case":"gold"}],"ip":[{"cidr":"10.0.0.0/8"}]}}}`)},
		{Name: "c", Pattern: []byte(`{"$or":[{"subject":[{"prefix":"orders/"}]},{"type":[{"wildcard":"*.created"}]}]}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := []byte(filterEvent)
	dst := make([]string, 0, 8)
	allocs := testing.AllocsPerRun(200, func() {
		out, err := m.Match(ev, dst[:0])
		if err != nil || len(out) != 3 {
			t.Fatal(out, err)
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %.1f times per event, want 0", allocs)
	}
}

func TestJSONPath(t *testing.T) {
	data := map[string]any{"a": map[string]any{"b": []any{1.0, map[string]any{"c": "x"}}}, "k.y": true}
	cases := []struct {
		path string
		want any
	}{
		{"$", data},
		{"$.a.b[0]", 1.0},
		{"$.a.b[1].c", "x"},
		{"$['a'][\"b\"][-1].c", "x"},
		{"$['k.y']", true},
		{"$.a.b[5]", nil},
		{"$.a.b[*]", []any{1.0, map[string]any{"c": "x"}}},
		{"$.a.b[*].c", []any{"x"}},
		{"$.zz[*]", []any{}},
	}
	for _, c := range cases {
		got, err := JSONPath(data, c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.path, got, c.want)
		}
	}
	for _, bad := range []string{"a.b", "$.", "$[1", "$[x]", "$x"} {
		if _, err := JSONPath(data, bad); err == nil {
			t.Errorf("JSONPath(%q) accepted", bad)
		}
	}
}

func TestAttentionMask(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte{'a', 'Z', ' ', '"', '\\', 0x1f, 0x00, 0x7f, 0x80, 0xff, 0x20, 0x21, 0x5b, 0x5d}
	for range 100000 {
		var b [8]byte
		want := 8 // index of the first byte needing attention
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
			if !strPlain[b[i]] && want == 8 {
				want = i
			}
		}
		m := attentionMask(binary.LittleEndian.Uint64(b[:]))
		if got := bits.TrailingZeros64(m) >> 3; got != want {
			t.Fatalf("attentionMask(%q): first flagged byte %d, want %d", b, got, want)
		}
	}
}

func TestDecodeAnyMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-1.5e3`, `"x"`, `"a\"b\\c\u00e9\ud83d\ude00"`,
		`{"a":[1,{"b":null},"s",[true,false]],"c":{"d":{"e":-0.0}},"f":""}`,
		`[1, 2 , [ ] , { } ,"\n"]`,
	}
	for _, cf := range loadConformance(t) {
		for _, c := range cf.Cases {
			inputs = append(inputs, string(c.event()))
		}
	}
	for _, in := range inputs {
		var want any
		wantErr := json.Unmarshal([]byte(in), &want)
		got, end, err := decodeAny([]byte(in), 0, 0)
		if wantErr != nil {
			if err == nil {
				t.Errorf("decodeAny(%s) accepted what encoding/json rejects: %v", in, wantErr)
			}
			continue
		}
		if err != nil || skipWS([]byte(in), end) != len(in) {
			t.Errorf("decodeAny(%s): %v (end %d)", in, err, end)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decodeAny(%s) = %#v, want %#v", in, got, want)
		}
	}
	for _, bad := range []string{`{`, `[1,]`, `{"a" 1}`, `1e999`, `tru`, `"\x"`} {
		if _, _, err := decodeAny([]byte(bad), 0, 0); err == nil {
			t.Errorf("decodeAny(%s) accepted", bad)
		}
	}
}

func TestParseJSONNumberMatchesParseFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var inputs []string
	for range 200000 {
		var b []byte
		if r.IntN(4) == 0 {
			b = append(b, '-')
		}
		intDigits := 1 + r.IntN(10)
		for i := range intDigits {
			c := byte('0' + r.IntN(10))
			if i == 0 && intDigits > 1 && c == '0' {
				c = '1'
			}
			b = append(b, c)
		}
		if r.IntN(2) == 0 {
			b = append(b, '.')
			for range 1 + r.IntN(9) {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		if r.IntN(8) == 0 {
			b = append(b, 'e')
			b = append(b, byte('0'+r.IntN(10)))
		}
		inputs = append(inputs, string(b))
	}
	inputs = append(inputs, "0", "-0", "-0.0", "0.1", "0.3", "9007199254740993", "123456789012345", "1234567890123456", "1e400", "2.2250738585072014e-308")
	for _, in := range inputs {
		got, ok := parseJSONNumber([]byte(in))
		want, err := strconv.ParseFloat(in, 64)
		if want == 0 {
			want = 0
		}
		if ok != (err == nil) || ok && got != want {
			t.Fatalf("parseJSONNumber(%s) = %v %v, ParseFloat = %v %v", in, got, ok, want, err)
		}
	}
}

// The matcher is shared by all router goroutines: run it concurrently
// (under -race in CI) with patterns and filters and compare the answers.
func TestMatchConcurrent(t *testing.T) {
	m, err := NewMatcher([]Rule{
		{Name: "a", Pattern: []byte(`{"source":["erp"],"data":{"items":{"sku":["B"],"qty":[{"numeric":[">",4]}]}}}`)},
		{Name: "b", Pattern: []byte(`{"data":{"customer":{"tier":[{"equals-ignore-case":"gold"}]}}}`), Filter: `data.amount > 100 && extensions.tenant == "acme"`},
		{Name: "c", Filter: `jsonpath(data, "$.items[0].sku") == "A"`},
		{Name: "d", Pattern: []byte(`{"source":["crm"]}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	other := []byte(`{"specversion":"1.0","id":"2","source":"crm","type":"t","data":{"items":[{"sku":"Z"}]}}`)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				ev, want := []byte(filterEvent), []string{"a", "b", "c"}
				if (g+i)%2 == 1 {
					ev, want = other, []string{"d"}
				}
				got, err := m.Match(ev, nil)
				if err != nil || !slices.Equal(got, want) {
					t.Errorf("goroutine %d: %v %v, want %v", g, got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
