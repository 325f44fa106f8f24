package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("rules:\n  - name: r\n    targets: [{id: a, type: http, url: \"http://127.0.0.1:1/x\"}]\n"), 0o600)
	out, _, err := runCLI(t, "validate", "--config", good)
	if err != nil || !strings.Contains(out, "valid (1 buses, 1 rules)") {
		t.Fatalf("good config: %v %q", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - name: r\n    bogus: 1\n    targets: [{id: a, type: http, url: \"http://x\", timeout: \"5 seconds\"}]\n"), 0o600)
	_, _, err = runCLI(t, "validate", "--config", bad)
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("bad config: %v", err)
	}
	for _, want := range []string{bad + ":3:5: rules[0].bogus: unknown field", bad + ":4:", "rules[0].targets[0].timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	_, _, err = runCLI(t, "serve", "--no-such-flag")
	if err == nil || exitCode(err) != 2 {
		t.Errorf("unknown flag: exit %d, %v", exitCode(err), err)
	}
	out, _, err = runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "busbar ") {
		t.Errorf("version: %v %q", err, out)
	}
}
