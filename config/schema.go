package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/invopop/jsonschema"
)

//go:generate go run ./internal/genschema -o busbar.schema.json

// SchemaID is the $id of the config's JSON Schema: where the committed
// config/busbar.schema.json is served from.
const SchemaID = "https://raw.githubusercontent.com/busbar/busbar/main/config/busbar.schema.json"

// modelSource is model.go itself: the field comments become the schema's
// descriptions, so the docs live in one place.
//
//go:embed model.go
var modelSource string

var (
	schemaOnce sync.Once
	schemaJSON []byte
)

// Schema returns the JSON Schema (draft 2020-12) of the config file, built
// from the model's types and doc comments. It rejects unknown fields and
// carries the name patterns, enums, integer bounds and defaults the loader
// applies. config/busbar.schema.json holds the same bytes (go generate
// ./config rewrites it; a test fails when it is stale).
func Schema() []byte {
	schemaOnce.Do(func() { schemaJSON = buildSchema() })
	return schemaJSON
}

func buildSchema() []byte {
	comments := modelComments()
	r := &jsonschema.Reflector{
		ExpandedStruct: true,
		LookupComment: func(t reflect.Type, field string) string {
			if field == "" {
				return comments[t.Name()]
			}
			sf, _ := t.FieldByName(field)
			key, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			return describeField(field, key, comments[t.Name()+"."+field])
		},
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			switch t {
			case durationType:
				return &jsonschema.Schema{
					Type:     "string",
					Pattern:  `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
					Examples: []any{"5s", "1m30s", "168h"},
				}
			case rawMessageType:
				return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
					{Type: "object"},
					{Type: "string", ContentMediaType: "application/json"},
				}}
			}
			return nil
		},
	}
	s := r.Reflect(&Config{})
	s.ID = SchemaID
	s.Title = "busbar config"

	prop := func(def, name string) *jsonschema.Schema {
		d := s
		if def != "Config" {
			d = s.Definitions[def]
		}
		p, ok := d.Properties.Get(name)
		if !ok {
			panic("config schema: no property " + def + "." + name)
		}
		return p
	}
	for _, p := range []*jsonschema.Schema{prop("Bus", "name"), prop("Rule", "name"), prop("Rule", "bus"), prop("Target", "id")} {
		p.Pattern = namePattern
	}
	prop("Rule", "bus").Default = DefaultBus
	// URLs may also come whole from the environment ("${HOOK_URL}").
	quoted := make([]string, len(transportSchemes))
	for i, s := range transportSchemes {
		quoted[i] = regexp.QuoteMeta(s)
	}
	prop("Config", "transport").Pattern = `^((` + strings.Join(quoted, "|") + `)://|\$\{)`
	prop("Config", "transport").Default = DefaultTransport
	prop("Target", "type").Enum = anys(targetTypes)
	prop("Target", "mode").Enum = anys(modes)
	prop("Target", "mode").Default = DefaultMode
	prop("Target", "method").Enum = anys(methods)
	prop("Target", "method").Default = DefaultMethod
	// Connections and destinations (connections.go).
	prop("Connection", "name").Pattern = namePattern
	prop("Pipe", "name").Pattern = namePattern
	prop("PipeSource", "type").Enum = anys([]string{TypeKafka}) // pipes read Kafka only (pipes.go)
	prop("KafkaSource", "session_timeout").Default = "45s"
	prop("Destination", "name").Pattern = namePattern
	prop("Connection", "type").Enum = anys(connTypes)
	prop("Destination", "method").Enum = anys(methods)
	prop("Destination", "method").Default = DefaultMethod
	prop("Destination", "timeout").Default = Duration(DefaultTimeout).String()
	prop("APIKey", "in").Enum = anys(apiKeyPlaces)
	prop("APIKey", "in").Default = DefaultAPIKeyIn
	prop("OAuth2", "method").Enum = anys(oauth2Methods)
	prop("OAuth2", "method").Default = DefaultOAuth2Method
	prop("OAuth2", "auth_style").Enum = anys(oauth2Styles)
	prop("OAuth2", "auth_style").Default = DefaultOAuth2Style
	prop("Target", "url").Pattern = `^(https?://|\$\{)`
	one := uint64(1)
	prop("Rule", "targets").MinItems = &one
	prop("Target", "headers").PropertyNames = &jsonschema.Schema{Pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"}
	prop("Rule", "enabled").Default = true
	s.Definitions["Target"].If = &jsonschema.Schema{
		Properties: jsonschema.NewProperties(),
		Required:   []string{"type"},
	}
	s.Definitions["Target"].If.Properties.Set("type", &jsonschema.Schema{Const: TypeHTTP})
	// An http target names its endpoint with url or with a destination.
	s.Definitions["Target"].Then = &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Required: []string{"url"}}, {Required: []string{"destination"}}}}

	for key, lim := range intLimits {
		def, name, _ := strings.Cut(key, ".")
		p := prop(def, name)
		p.Minimum = json.Number(strconv.FormatInt(lim[0], 10))
		if lim[1] != math.MaxInt64 {
			p.Maximum = json.Number(strconv.FormatInt(lim[1], 10))
		}
	}
	// clickhouse targets may go higher (the validator checks per type).
	prop("Target", "concurrency").Maximum = json.Number(strconv.Itoa(MaxBatchingConcurrency))
	for key, v := range map[string]any{
		"Ingest.max_batch_entries": DefaultMaxBatchEntries,
		"Ingest.max_request_bytes": DefaultMaxRequestBytes,
		"Bus.retention":            Duration(DefaultRetention).String(),
		"Target.timeout":           Duration(DefaultTimeout).String(),
		"Target.concurrency":       DefaultConcurrency,
		"Retry.max_attempts":       DefaultMaxAttempts,
		"Retry.initial_interval":   Duration(DefaultInitialInterval).String(),
		"Retry.max_interval":       Duration(DefaultMaxInterval).String(),
	} {
		def, name, _ := strings.Cut(key, ".")
		prop(def, name).Default = v
	}

	// Top-level x-* keys are free, a place for YAML anchors.
	s.PatternProperties = map[string]*jsonschema.Schema{"^x-": {}}
	// JSON configs may name their schema, the way editors expect.
	s.Properties.Set("$schema", &jsonschema.Schema{
		Type:        "string",
		Description: "The JSON Schema of this file, for editors; the loader ignores it.",
	})

	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		panic("config schema: " + err.Error())
	}
	return b.Bytes()
}

// describeField turns a Go doc comment into a description for the file's
// readers: "MaxAttempts counts ..." becomes "max_attempts counts ...", and
// "Retention is how long ..." becomes "How long ...".
func describeField(goName, key, doc string) string {
	rest, ok := strings.CutPrefix(doc, goName+" ")
	if !ok {
		return doc
	}
	if r, ok := strings.CutPrefix(rest, "is "); ok && r != "" {
		return strings.ToUpper(r[:1]) + r[1:]
	}
	if strings.ToLower(goName) == key {
		return doc // "Name of the bus" reads as English already
	}
	return key + " " + rest
}

func anys(xs []string) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// modelComments reads the doc comments of model.go's types ("Rule") and
// fields ("Rule.Name"), each joined into one line.
func modelComments() map[string]string {
	f, err := parser.ParseFile(token.NewFileSet(), "model.go", modelSource, parser.ParseComments)
	if err != nil {
		panic("config schema: " + err.Error())
	}
	out := map[string]string{}
	clean := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, spec := range gd.Specs {
			ts := spec.(*ast.TypeSpec)
			doc := ts.Doc
			if doc == nil {
				doc = gd.Doc
			}
			out[ts.Name.Name] = clean(doc.Text())
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, fl := range st.Fields.List {
				for _, n := range fl.Names {
					out[ts.Name.Name+"."+n.Name] = clean(fl.Doc.Text())
				}
			}
		}
	}
	return out
}
