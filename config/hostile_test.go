package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// allocated runs f and returns how many bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// wantFileError checks that loading src fails with one error that contains
// msg, and allocates less than limit bytes doing so.
func wantFileError(t *testing.T, src []byte, msg string, limit uint64) {
	t.Helper()
	var err error
	n := allocated(func() { _, err = parse(src, "hostile.yaml", noEnv) })
	var list ErrorList
	if !errors.As(err, &list) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v, want an ErrorList containing %q", err, msg)
	}
	if n > limit {
		t.Errorf("allocated %d MiB, want under %d MiB", n>>20, limit>>20)
	}
}

func TestHostileBigFile(t *testing.T) {
	big := []byte("# " + strings.Repeat("x", 10<<20) + "\n")
	wantFileError(t, big, "the file is larger than 8 MiB", 1<<20)

	// Load reads no more than the limit from disk.
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, big, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	n := allocated(func() { _, err = Load(p) })
	if err == nil || !strings.HasPrefix(err.Error(), p+": the file is larger than 8 MiB") {
		t.Errorf("Load: %v", err)
	}
	if n > 64<<20 {
		t.Errorf("Load allocated %d MiB", n>>20)
	}
}

func TestHostileManyValues(t *testing.T) {
	// Under the size cap but millions of values: refused before parsing.
	src := []byte("buses:\n" + strings.Repeat("- a\n", 1500_000))
	wantFileError(t, src, "more than the 400000 a config may hold", 1<<20)
	src = []byte("x: [" + strings.Repeat("1,", 3<<20) + "1]")
	wantFileError(t, src, "more than the 400000 a config may hold", 1<<20)
}

func TestHostileDeepNesting(t *testing.T) {
	wantFileError(t, []byte("rules: "+strings.Repeat("[", 100_000)+strings.Repeat("]", 100_000)), "exceeded max depth", 64<<20)
	wantFileError(t, []byte("rules:\n"+strings.Repeat("- ", 20_000)+"a\n"), "invalid YAML", 64<<20)
	// Deep but parseable: the model's shape stops it.
	wantFileError(t, []byte("rules: "+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)), "expected a rule", 64<<20)
}

// billionLaughs builds the classic alias bomb: 9 levels of 9 aliases each,
// 9^9 (387 million) leaves once expanded, under `at`.
func billionLaughs(at string) []byte {
	var b strings.Builder
	b.WriteString("x-lol0: &lol0 [lol]\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("x-lol" + string(rune('0'+i)) + ": &lol" + string(rune('0'+i)) + " [")
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*lol" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString(at)
	return []byte(b.String())
}

func TestHostileAliasBomb(t *testing.T) {
	for name, at := range map[string]string{
		"pattern": "rules:\n  - name: r\n    pattern: {source: *lol9}\n    targets: [{id: t, type: http, url: 'https://x'}]\n",
		"rules":   "rules: *lol9\n",
		"headers": "rules:\n  - name: r\n    targets: [{id: t, type: http, url: 'https://x', headers: {a: *lol9}}]\n",
	} {
		t.Run(name, func(t *testing.T) {
			// Either the expansion budget or the first type error stops it.
			src := billionLaughs(at)
			var err error
			n := allocated(func() { _, err = parse(src, "bomb.yaml", noEnv) })
			if err == nil {
				t.Fatal("loaded an alias bomb")
			}
			if n > 256<<20 {
				t.Errorf("allocated %d MiB", n>>20)
			}
			t.Logf("%d KiB: %.200s", n>>10, err)
		})
	}
	// Under a pattern, where any shape is allowed, a budget is what stops it.
	wantFileError(t, billionLaughs("rules:\n  - name: r\n    pattern: {source: *lol9}\n    targets: [{id: t, type: http, url: 'https://x'}]\n"),
		"the pattern has more than 10000 keys and values", 16<<20)
}

// mergeBomb nests merge keys levels deep, each merging 9 mappings.
func mergeBomb(levels int) []byte {
	var b strings.Builder
	b.WriteString("x-m0: &m0 {type: http}\n")
	for i := 1; i <= levels; i++ {
		b.WriteString(fmt.Sprintf("x-m%d: &m%d {<<: [", i, i))
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(fmt.Sprintf("*m%d", i-1))
		}
		b.WriteString("]}\n")
	}
	b.WriteString(fmt.Sprintf("rules: [{name: r, targets: [{<<: *m%d, id: t, url: 'https://x'}]}]\n", levels))
	return []byte(b.String())
}

func TestHostileMergeBomb(t *testing.T) {
	// 9^7 = 4.8 million merges: the visit budget stops it.
	wantFileError(t, mergeBomb(7), "the document expands to more than 1000000 values", 256<<20)
	// Deeper than any sane config: the merge depth limit stops it at once.
	wantFileError(t, mergeBomb(12), "merge keys (<<) nest deeper than 8 levels", 1<<20)
	// Shallow merges are fine.
	if _, err := parse(mergeBomb(2), "ok.yaml", noEnv); err != nil {
		t.Error(err)
	}
}

func TestHostileSelfMerge(t *testing.T) {
	wantFileError(t, []byte("ingest: &a\n  max_batch_entries: 1\n  <<: *a\n"), "or a mapping merges itself", 1<<20)
}

func TestLegitimateAliases(t *testing.T) {
	src := `x-target: &target {type: http, url: 'https://x', timeout: 2s}
rules:
  - name: a
    targets: [{<<: *target, id: t1}, {<<: *target, id: t2, timeout: 3s}]
`
	c, err := parse([]byte(src), "b.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rules[0].Targets[0].Timeout.String() != "2s" || c.Rules[0].Targets[1].Timeout.String() != "3s" || c.Rules[0].Targets[1].URL != "https://x" {
		t.Errorf("%+v", c.Rules[0].Targets)
	}
}

// FuzzParse checks that no input makes the loader panic or accept a config
// that does not validate. `go test` runs the seeds; fuzz with
// go test -fuzz FuzzParse ./config.
func FuzzParse(f *testing.F) {
	full, _ := os.ReadFile("testdata/full.yaml")
	f.Add(full, "busbar.yaml")
	f.Add([]byte(envConfig), "busbar.yaml")
	f.Add([]byte(`{"rules":[{"name":"r","pattern":"{\"a\":[1]}","targets":[{"id":"t","type":"http","url":"https://x"}]}]}`), "b.json")
	f.Add(billionLaughs("rules: *lol3\n"), "b.yaml")
	f.Add(mergeBomb(3), "b.yaml")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		c, err := parse(data, name, func(k string) (string, bool) { return "v-" + k, true })
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T: %v", err, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded a config that does not validate: %v", err)
		}
	})
}
