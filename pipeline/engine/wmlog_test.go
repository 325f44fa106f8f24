package engine

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestWatermillLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	wl := wmLogger(log).With(watermill.LogFields{"handler": "h"})
	wl.Trace("trace line", watermill.LogFields{"k": 1})
	wl.Debug("debug line", nil)
	wl.Info("info line", nil) // watermill's info is busbar's debug
	wl.Error("error line", nil, watermill.LogFields{"k": 2})
	out := buf.String()
	for _, hidden := range []string{"trace line", "debug line", "info line"} {
		if strings.Contains(out, hidden) {
			t.Errorf("%q logged at level info:\n%s", hidden, out)
		}
	}
	if !strings.Contains(out, "error line") || !strings.Contains(out, "handler=h") || !strings.Contains(out, "k=2") {
		t.Errorf("error line missing or without its fields:\n%s", out)
	}

	buf.Reset()
	log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: watermill.LevelTrace}))
	wl = wmLogger(log)
	wl.Trace("trace line", watermill.LogFields{"k": 1})
	wl.Info("info line", nil)
	out = buf.String()
	if !strings.Contains(out, "trace line") || !strings.Contains(out, "k=1") {
		t.Errorf("trace line missing at level trace:\n%s", out)
	}
	if !strings.Contains(out, "level=DEBUG msg=\"info line\"") {
		t.Errorf("watermill's info line not logged as debug:\n%s", out)
	}
}
