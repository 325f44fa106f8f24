package transform

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/busbar/busbar/config"
)

// TestDocsExamples compiles every transform: example of docs/transforms.md
// and applies it to the order event, and loads the complete configs.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/transforms.md")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := os.ReadFile("../testdata/transforms/events/order.json")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PII_HASH_KEY": "docs-example-key-0123456789"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	n := 0
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		src := b[1]
		switch {
		case strings.HasPrefix(src, "transform:\n"):
			n++
			var inner []string
			for _, l := range strings.Split(strings.TrimPrefix(src, "transform:\n"), "\n") {
				inner = append(inner, strings.TrimPrefix(l, "  "))
			}
			if _, err := Try([]byte(strings.Join(inner, "\n")), "docs.yaml", lookup, ev, Meta{Rule: "r", Bus: "orders"}); err != nil {
				t.Errorf("example does not work:\n%s\n%v", src, err)
			}
		case strings.HasPrefix(src, "buses:"), strings.HasPrefix(src, "rules:"):
			n++
			if _, err := config.Parse([]byte(src), "docs.yaml"); err != nil {
				t.Errorf("example does not load:\n%s\n%v", src, err)
			}
		}
	}
	if n < 10 {
		t.Errorf("found only %d examples", n)
	}
}
