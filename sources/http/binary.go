package http

import (
	"encoding/json"
	"mime"
	nethttp "net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/busbar/busbar/pipeline"
)

// binaryAsStructured writes a binary-mode request of the common shape as
// the structured event the CloudEvents SDK would read from it, for
// pipeline.NormalizeJSON: a JSON body (Content-Type application/json) and
// ce- headers that each have one plain value (valid UTF-8, no
// percent-encoding, quotes or backslashes), whose
// names are valid attribute names. ok is false for anything else, which
// then takes the SDK's binary-mode reader, with its own errors.
// TestBinaryMatchesSDK holds the two together.
func binaryAsStructured(h nethttp.Header, body []byte) (raw []byte, ok bool) {
	ct := h.Get("Content-Type")
	if media, _, err := mime.ParseMediaType(ct); err != nil || media != "application/json" || len(body) == 0 || !json.Valid(body) {
		return nil, false
	}
	type attr struct{ name, value string }
	attrs := make([]attr, 0, 8)
	for k, vs := range h {
		if len(k) < 4 || !strings.EqualFold(k[:3], "ce-") {
			continue
		}
		name := strings.ToLower(k[3:])
		if len(vs) != 1 || !attrName(name) || name == "datacontenttype" || name == "data" || name == "data_base64" ||
			strings.ContainsAny(vs[0], "%\\\"") || !utf8.ValidString(vs[0]) {
			return nil, false
		}
		attrs = append(attrs, attr{name, vs[0]})
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].name < attrs[j].name })
	n := len(body) + len(ct) + 64
	for _, a := range attrs {
		n += len(a.name) + len(a.value) + 6
	}
	raw = make([]byte, 0, n)
	raw = append(raw, '{')
	for _, a := range attrs {
		raw = append(raw, '"')
		raw = append(raw, a.name...)
		raw = append(raw, `":`...)
		raw = pipeline.AppendJSONString(raw, a.value)
		raw = append(raw, ',')
	}
	raw = append(raw, `"datacontenttype":`...)
	raw = pipeline.AppendJSONString(raw, ct)
	raw = append(raw, `,"data":`...)
	raw = append(raw, body...)
	return append(raw, '}'), true
}

// attrName reports whether s is a CloudEvents attribute name: lower-case
// letters and digits, 1 to 20 characters.
func attrName(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
