package pipes

import (
	"os"
	"regexp"
	"testing"

	"github.com/busbar/busbar/config"
)

// TestDocsExamplesLoad loads every complete YAML example of docs/pipes.md.
func TestDocsExamplesLoad(t *testing.T) {
	doc, err := os.ReadFile("../../docs/pipes.md")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PII_HASH_KEY", "0123456789abcdef0123456789abcdef")
	n := 0
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1) {
		c, err := config.Parse(b[1], "pipes.yaml")
		if err != nil {
			t.Errorf("example does not load:\n%s\n%v", b[1], err)
			continue
		}
		if len(c.Pipes) == 0 {
			t.Errorf("example holds no pipe:\n%s", b[1])
		}
		n++
	}
	if n < 2 {
		t.Errorf("found %d examples", n)
	}
}
