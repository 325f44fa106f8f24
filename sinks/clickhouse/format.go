package clickhouse

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Formats are the output formats of WriteResult.
var Formats = []string{"table", "json", "csv", "ndjson"}

// WriteResult writes res as "table" (aligned columns for a terminal),
// "json" (the Result object), "csv" (a header line, then rows) or "ndjson"
// (one JSON object per row, keyed by column name).
func WriteResult(w io.Writer, res *Result, format string) error {
	switch format {
	case "", "table":
		return writeTable(w, res)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(res)
	case "ndjson":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, r := range res.Rows {
			obj := make(orderedRow, len(r))
			for i, v := range r {
				obj[i] = kv{res.Columns[i].Name, v}
			}
			if err := enc.Encode(obj); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		head := make([]string, len(res.Columns))
		for i, c := range res.Columns {
			head[i] = c.Name
		}
		if err := cw.Write(head); err != nil {
			return err
		}
		for _, r := range res.Rows {
			rec := make([]string, len(r))
			for i, v := range r {
				rec[i] = text(v)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("unknown format %q (use %s)", format, strings.Join(Formats, ", "))
}

// ContentType is the media type of a format.
func ContentType(format string) string {
	switch format {
	case "json":
		return "application/json"
	case "ndjson":
		return "application/x-ndjson"
	case "csv":
		return "text/csv; charset=utf-8"
	}
	return "text/plain; charset=utf-8"
}

type kv struct {
	k string
	v any
}

// orderedRow marshals as an object with the columns in query order.
type orderedRow []kv

func (r orderedRow) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// text is a value as a table or CSV cell.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case json.RawMessage:
		return string(x)
	case json.Number:
		return string(x)
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// maxCell caps a table cell; the other formats are never cut.
const maxCell = 80

func writeTable(w io.Writer, res *Result) error {
	cells := make([][]string, 0, len(res.Rows)+1)
	head := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		head[i] = c.Name
	}
	cells = append(cells, head)
	for _, r := range res.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			s := strings.ReplaceAll(text(v), "\n", `\n`)
			if utf8.RuneCountInString(s) > maxCell {
				s = string([]rune(s)[:maxCell-1]) + "…"
			}
			row[i] = s
		}
		cells = append(cells, row)
	}
	width := make([]int, len(head))
	for _, r := range cells {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b bytes.Buffer
	line := func(r []string) {
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
			}
		}
		b.WriteByte('\n')
	}
	line(cells[0])
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = strings.Repeat("─", width[i])
	}
	line(sep)
	for _, r := range cells[1:] {
		line(r)
	}
	fmt.Fprintf(&b, "(%d row%s, %d ms)\n", res.RowCount, plural(res.RowCount), res.ElapsedMS)
	_, err := w.Write(b.Bytes())
	return err
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
