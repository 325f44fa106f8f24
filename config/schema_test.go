package config

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestSchemaFileIsCurrent(t *testing.T) {
	committed, err := os.ReadFile("busbar.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, Schema()) {
		t.Fatal("config/busbar.schema.json is stale: run go generate ./config and commit it")
	}
}

// schemaDoc is the part of the JSON Schema the tests look at.
type schemaDoc struct {
	Properties           map[string]schemaProp `json:"properties"`
	AdditionalProperties *bool                 `json:"additionalProperties"`
	Defs                 map[string]struct {
		Properties           map[string]schemaProp `json:"properties"`
		AdditionalProperties *bool                 `json:"additionalProperties"`
	} `json:"$defs"`
}

type schemaProp struct {
	Description string      `json:"description"`
	Minimum     json.Number `json:"minimum"`
	Maximum     json.Number `json:"maximum"`
	Enum        []string    `json:"enum"`
	Pattern     string      `json:"pattern"`
}

func loadSchema(t *testing.T) schemaDoc {
	var s schemaDoc
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSchemaContent(t *testing.T) {
	s := loadSchema(t)
	if s.AdditionalProperties == nil || *s.AdditionalProperties {
		t.Error("the top level allows unknown fields")
	}
	for def, d := range s.Defs {
		if d.AdditionalProperties == nil || *d.AdditionalProperties {
			t.Errorf("%s allows unknown fields", def)
		}
		for name, p := range d.Properties {
			if p.Description == "" {
				t.Errorf("%s.%s has no description (document the Go field)", def, name)
			}
		}
	}
	for key, lim := range intLimits {
		def, name, _ := strings.Cut(key, ".")
		p := s.Defs[def].Properties[name]
		if p.Minimum.String() != strconv.FormatInt(lim[0], 10) {
			t.Errorf("%s: schema minimum %s, loader %d", key, p.Minimum, lim[0])
		}
	}
	if got := s.Defs["Target"].Properties["mode"].Enum; strings.Join(got, ",") != "structured,binary" {
		t.Errorf("mode enum %v", got)
	}
	if s.Defs["Bus"].Properties["name"].Pattern != namePattern {
		t.Error("bus name has no pattern")
	}
	// The field names the loader accepts are the schema's.
	for typ := range nouns {
		props := s.Properties
		if typ.Name() != "Config" {
			props = s.Defs[typ.Name()].Properties
		}
		for _, name := range fieldsOf(typ).names {
			if _, ok := props[name]; !ok {
				t.Errorf("%s.%s is missing from the schema", typ.Name(), name)
			}
		}
		for name := range props {
			if _, ok := fieldsOf(typ).byName[name]; !ok && name != "$schema" {
				t.Errorf("the schema has %s.%s, the loader does not", typ.Name(), name)
			}
		}
	}
}
