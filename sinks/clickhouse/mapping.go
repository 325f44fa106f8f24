package clickhouse

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/buger/jsonparser"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/busbar/busbar/config"
)

// mapping fills the columns of a custom table from an event.
type mapping struct {
	cols     []mappedColumn
	needsMap bool // some column has an expr: decode the event once
}

type mappedColumn struct {
	name     string
	typ      string
	path     []string // jsonparser keys; nil when expr is used
	src      string   // the path or expr, for messages
	prog     *vm.Program
	conv     converter
	nullable bool
	def      any // converted default; nil when none
	hasDef   bool
}

// converter turns a value found in an event (string, json.Number, bool,
// json.RawMessage for objects and arrays, or what an expression returned)
// into exactly the Go type the driver writes for the column.
type converter func(v any) (any, error)

// newMapping checks the mapped columns against the table's and compiles
// paths, expressions and converters.
func newMapping(fq string, cfg []config.ClickHouseColumn, table []column) (*mapping, error) {
	have := map[string]column{}
	for _, c := range table {
		have[c.name] = c
	}
	m := &mapping{}
	var problems []string
	for _, c := range cfg {
		tc, ok := have[c.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("column %s does not exist", c.Name))
			continue
		}
		if tc.defaultKind == "MATERIALIZED" || tc.defaultKind == "ALIAS" {
			problems = append(problems, fmt.Sprintf("column %s is %s and cannot be written", c.Name, tc.defaultKind))
			continue
		}
		conv, nullable, err := converterFor(tc.typ)
		if err != nil {
			problems = append(problems, fmt.Sprintf("column %s: %v", c.Name, err))
			continue
		}
		mc := mappedColumn{name: c.Name, typ: tc.typ, conv: conv, nullable: nullable}
		if c.Expr != "" {
			prog, err := expr.Compile(c.Expr, expr.AllowUndefinedVariables())
			if err != nil {
				problems = append(problems, fmt.Sprintf("column %s: expr: %v", c.Name, err))
				continue
			}
			mc.prog, mc.src = prog, c.Expr
			m.needsMap = true
		} else {
			keys, err := pathKeys(c.Path)
			if err != nil {
				problems = append(problems, fmt.Sprintf("column %s: %v", c.Name, err))
				continue
			}
			mc.path, mc.src = keys, c.Path
		}
		if c.Default != "" {
			d, err := conv(c.Default)
			if err != nil {
				problems = append(problems, fmt.Sprintf("column %s: default %q: %v", c.Name, c.Default, err))
				continue
			}
			mc.def, mc.hasDef = d, true
		}
		m.cols = append(m.cols, mc)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("table %s does not fit the column mapping: %s", fq, strings.Join(problems, "; "))
	}
	return m, nil
}

// row is the values of one event, in column order. Its error names the
// column, where the value came from, and why it does not fit.
func (m *mapping) row(src []byte) ([]any, error) {
	var env map[string]any
	if m.needsMap {
		if err := json.Unmarshal(src, &env); err != nil {
			return nil, fmt.Errorf("the event is not a JSON object: %v", err)
		}
	}
	vals := make([]any, len(m.cols))
	for i := range m.cols {
		c := &m.cols[i]
		var v any
		if c.prog != nil {
			out, err := expr.Run(c.prog, env)
			if err != nil {
				return nil, fmt.Errorf("column %s: expr %s: %v", c.name, c.src, err)
			}
			v = normalize(out)
		} else {
			var err error
			if v, err = lookup(src, c.path); err != nil {
				return nil, fmt.Errorf("column %s: %s: %v", c.name, c.src, err)
			}
		}
		if v == nil {
			switch {
			case c.hasDef:
				vals[i] = c.def
			case c.nullable:
				vals[i] = nil
			default:
				return nil, fmt.Errorf("column %s (%s): no value at %s (give the column a default: in the mapping, or make it Nullable)", c.name, c.typ, c.src)
			}
			continue
		}
		out, err := c.conv(v)
		if err != nil {
			return nil, fmt.Errorf("column %s (%s): %s: %v", c.name, c.typ, c.src, err)
		}
		vals[i] = out
	}
	return vals, nil
}

// pathRE splits the JSONPath subset config accepts.
var pathRE = regexp.MustCompile(`\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]|\[([0-9]+)\]`)

// pathKeys turns $.a['b'][0] into jsonparser keys a, b, [0].
func pathKeys(p string) ([]string, error) {
	if !strings.HasPrefix(p, "$") {
		return nil, fmt.Errorf("%q is not a JSONPath (start with $)", p)
	}
	rest := p[1:]
	var keys []string
	for rest != "" {
		loc := pathRE.FindStringSubmatchIndex(rest)
		if loc == nil || loc[0] != 0 {
			return nil, fmt.Errorf("%q is not a supported JSONPath", p)
		}
		switch {
		case loc[2] >= 0:
			keys = append(keys, rest[loc[2]:loc[3]])
		case loc[4] >= 0:
			keys = append(keys, strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(rest[loc[4]:loc[5]]))
		default:
			keys = append(keys, "["+rest[loc[6]:loc[7]]+"]")
		}
		rest = rest[loc[1]:]
	}
	return keys, nil
}

// lookup finds the value at keys: nil when missing or null.
func lookup(src []byte, keys []string) (any, error) {
	val, vt, _, err := jsonparser.Get(src, keys...)
	if errors.Is(err, jsonparser.KeyPathNotFoundError) || vt == jsonparser.NotExist || vt == jsonparser.Null {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch vt {
	case jsonparser.String:
		if !hasEscape(val) {
			return string(val), nil
		}
		return jsonparser.ParseString(val)
	case jsonparser.Number:
		return json.Number(val), nil
	case jsonparser.Boolean:
		return val[0] == 't', nil
	}
	return json.RawMessage(val), nil
}

// normalize makes an expression's result look like a looked-up value.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, bool, json.Number, time.Time:
		return x
	case int:
		return json.Number(strconv.Itoa(x))
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case float64:
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return json.RawMessage(b)
}

var (
	fixedRE   = regexp.MustCompile(`^FixedString\((\d+)\)$`)
	decimalRE = regexp.MustCompile(`^Decimal(?:32|64|128|256)?\((\d+),\s*(\d+)\)$`)
	enumRE    = regexp.MustCompile(`'((?:[^'\\]|\\.)*)'\s*=\s*-?\d+`)
)

// converterFor returns the converter of a ClickHouse column type, and
// whether the column takes NULL.
func converterFor(t string) (converter, bool, error) {
	if inner, ok := unwrap(t, "Nullable"); ok {
		c, _, err := converterFor(inner)
		return c, true, err
	}
	if inner, ok := unwrap(t, "LowCardinality"); ok {
		return converterFor(inner)
	}
	switch t {
	case "String":
		return toString, false, nil
	case "Bool":
		return toBool, false, nil
	case "Int8":
		return intConv[int8](math.MinInt8, math.MaxInt8), false, nil
	case "Int16":
		return intConv[int16](math.MinInt16, math.MaxInt16), false, nil
	case "Int32":
		return intConv[int32](math.MinInt32, math.MaxInt32), false, nil
	case "Int64":
		return intConv[int64](math.MinInt64, math.MaxInt64), false, nil
	case "UInt8":
		return uintConv[uint8](math.MaxUint8), false, nil
	case "UInt16":
		return uintConv[uint16](math.MaxUint16), false, nil
	case "UInt32":
		return uintConv[uint32](math.MaxUint32), false, nil
	case "UInt64":
		return uintConv[uint64](math.MaxUint64), false, nil
	case "Float32":
		return floatConv(32), false, nil
	case "Float64":
		return floatConv(64), false, nil
	case "UUID":
		return toUUID, false, nil
	case "Date":
		return timeConv(t, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2149, 6, 6, 0, 0, 0, 0, time.UTC)), false, nil
	}
	if t == "Date32" || strings.HasPrefix(t, "DateTime64") {
		return timeConv(t, minTime, maxTime), false, nil
	}
	if t == "DateTime" || strings.HasPrefix(t, "DateTime(") {
		return timeConv(t, time.Unix(0, 0).UTC(), time.Unix(math.MaxUint32, 0).UTC()), false, nil
	}
	if isJSON(t) {
		return toJSONObject, false, nil
	}
	if m := fixedRE.FindStringSubmatch(t); m != nil {
		n, _ := strconv.Atoi(m[1])
		return func(v any) (any, error) {
			s, err := toString(v)
			if err != nil {
				return nil, err
			}
			if len(s.(string)) > n {
				return nil, fmt.Errorf("%d bytes do not fit FixedString(%d)", len(s.(string)), n)
			}
			return s, nil
		}, false, nil
	}
	if m := decimalRE.FindStringSubmatch(t); m != nil {
		p, _ := strconv.Atoi(m[1])
		sc, _ := strconv.Atoi(m[2])
		return decimalConv(p, sc), false, nil
	}
	if strings.HasPrefix(t, "Enum8(") || strings.HasPrefix(t, "Enum16(") {
		names := map[string]bool{}
		for _, m := range enumRE.FindAllStringSubmatch(t, -1) {
			names[strings.ReplaceAll(m[1], `\'`, `'`)] = true
		}
		return func(v any) (any, error) {
			s, ok := v.(string)
			if !ok || !names[s] {
				return nil, fmt.Errorf("%s is not a value of %s", show(v), t)
			}
			return s, nil
		}, false, nil
	}
	return nil, false, fmt.Errorf("type %s is not supported by column mappings (use String, numbers, Bool, Decimal, Date/DateTime, UUID, Enum, JSON, or their Nullable/LowCardinality forms)", t)
}

// unwrap returns X of Wrapper(X).
func unwrap(t, wrapper string) (string, bool) {
	if strings.HasPrefix(t, wrapper+"(") && strings.HasSuffix(t, ")") {
		return t[len(wrapper)+1 : len(t)-1], true
	}
	return "", false
}

// show quotes a value for an error message, shortened.
func show(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = strconv.Quote(x)
	case json.RawMessage:
		s = string(x)
	default:
		s = fmt.Sprint(x)
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func toString(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.RawMessage:
		return string(x), nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	}
	return fmt.Sprint(v), nil
}

func toBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(x); err == nil {
			return b, nil
		}
	case json.Number:
		switch x {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
	}
	return nil, fmt.Errorf("%s is not a boolean", show(v))
}

// number reads a number, or a string holding one.
func number(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return string(x), true
	case string:
		s := strings.TrimSpace(x)
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return s, true
		}
	}
	return "", false
}

type signed interface {
	~int8 | ~int16 | ~int32 | ~int64
}
type unsigned interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64
}

func intConv[T signed](lo, hi int64) converter {
	return func(v any) (any, error) {
		s, ok := number(v)
		if !ok {
			return nil, fmt.Errorf("%s is not a number", show(v))
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(s, 64)
			if ferr != nil || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
				return nil, fmt.Errorf("%s is not an integer in %d..%d", show(v), lo, hi)
			}
			n = int64(f)
		}
		if n < lo || n > hi {
			return nil, fmt.Errorf("%s is out of range %d..%d", show(v), lo, hi)
		}
		return T(n), nil
	}
}

func uintConv[T unsigned](hi uint64) converter {
	return func(v any) (any, error) {
		s, ok := number(v)
		if !ok {
			return nil, fmt.Errorf("%s is not a number", show(v))
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(s, 64)
			if ferr != nil || f != math.Trunc(f) || f < 0 || f > float64(hi) {
				return nil, fmt.Errorf("%s is not an integer in 0..%d", show(v), hi)
			}
			n = uint64(f)
		}
		if n > hi {
			return nil, fmt.Errorf("%s is out of range 0..%d", show(v), hi)
		}
		return T(n), nil
	}
}

func floatConv(bits int) converter {
	return func(v any) (any, error) {
		s, ok := number(v)
		if !ok {
			return nil, fmt.Errorf("%s is not a number", show(v))
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return nil, fmt.Errorf("%s is out of range of Float%d", show(v), bits)
		}
		if bits == 32 {
			return float32(f), nil
		}
		return f, nil
	}
}

func decimalConv(p, sc int) converter {
	return func(v any) (any, error) {
		s, ok := number(v)
		if !ok {
			return nil, fmt.Errorf("%s is not a number", show(v))
		}
		d, err := decimal.NewFromString(s)
		if err != nil {
			return nil, fmt.Errorf("%s is not a decimal", show(v))
		}
		d = d.Round(int32(sc))
		if intDigits := len(d.Truncate(0).Abs().String()); d.Truncate(0).Abs().Sign() > 0 && intDigits > p-sc {
			return nil, fmt.Errorf("%s does not fit Decimal(%d, %d)", show(v), p, sc)
		}
		return d, nil
	}
}

func timeConv(t string, lo, hi time.Time) converter {
	return func(v any) (any, error) {
		var tm time.Time
		switch x := v.(type) {
		case time.Time:
			tm = x
		case string:
			var err error
			for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02"} {
				if tm, err = time.Parse(layout, x); err == nil {
					break
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%s is not a time (use RFC 3339, like 2024-05-01T10:00:00Z)", show(v))
			}
		case json.Number:
			f, err := strconv.ParseFloat(string(x), 64)
			if err != nil {
				return nil, fmt.Errorf("%s is not a Unix time", show(v))
			}
			sec, frac := math.Modf(f)
			tm = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		default:
			return nil, fmt.Errorf("%s is not a time", show(v))
		}
		if tm.Before(lo) || tm.After(hi) {
			return nil, fmt.Errorf("%s is outside what %s holds (%s to %s)", tm.Format(time.RFC3339), t, lo.Format("2006-01-02"), hi.Format("2006-01-02"))
		}
		return tm, nil
	}
}

func toUUID(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%s is not a UUID", show(v))
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%s is not a UUID", show(v))
	}
	return u, nil
}

func toJSONObject(v any) (any, error) {
	switch x := v.(type) {
	case json.RawMessage:
		if len(x) > 0 && x[0] == '{' {
			return string(x), nil
		}
	case string:
		var probe map[string]json.RawMessage
		if json.Unmarshal([]byte(x), &probe) == nil {
			return x, nil
		}
	}
	return nil, fmt.Errorf("%s is not a JSON object", show(v))
}
