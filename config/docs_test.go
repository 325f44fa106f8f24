package config

import (
	"os"
	"regexp"
	"testing"
)

// TestDocsCoverEveryField keeps docs/config.md in step with the model.
func TestDocsCoverEveryField(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	s := loadSchema(t)
	check := func(where, name string) {
		if !regexp.MustCompile("`" + regexp.QuoteMeta(name) + "`").Match(doc) {
			t.Errorf("docs/config.md does not mention `%s` (%s)", name, where)
		}
	}
	for name := range s.Properties {
		check("top level", name)
	}
	for def, d := range s.Defs {
		for name := range d.Properties {
			check(def, name)
		}
	}
}

// TestDocsExamplesLoad loads every complete YAML example of docs/config.md
// (blocks that start at the top level and have no "..." placeholders).
func TestDocsExamplesLoad(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CRM_HOST", "crm.example.com")
	t.Setenv("CRM_TOKEN", "token")
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	n := 0
	for _, b := range blocks {
		src := b[1]
		if len(src) == 0 || src[0] == ' ' || regexp.MustCompile(`\.\.\.`).Match(src) {
			continue // a fragment
		}
		n++
		if _, err := Parse(src, "docs.yaml"); err != nil {
			t.Errorf("example does not load:\n%s\n%v", src, err)
		}
	}
	if n < 4 {
		t.Errorf("found only %d complete examples", n)
	}
}
