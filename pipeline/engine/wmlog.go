package engine

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// wmLogger adapts log to watermill: watermill's info lines (its
// per-handler chatter) become debug lines, and nothing is built for a
// level that is off. watermill's router logs every message at trace level,
// and its slog adapter turns the fields of each such line into attributes
// before slog drops it.
func wmLogger(log *slog.Logger) watermill.LoggerAdapter {
	return gatedLogger{
		LoggerAdapter: watermill.NewSlogLoggerWithLevelMapping(log, map[slog.Level]slog.Level{
			slog.LevelInfo: slog.LevelDebug,
		}),
		log: log,
	}
}

type gatedLogger struct {
	watermill.LoggerAdapter
	log *slog.Logger
}

func (g gatedLogger) enabled(l slog.Level) bool { return g.log.Enabled(context.Background(), l) }

func (g gatedLogger) Info(msg string, fields watermill.LogFields) {
	if g.enabled(slog.LevelDebug) {
		g.LoggerAdapter.Info(msg, fields)
	}
}

func (g gatedLogger) Debug(msg string, fields watermill.LogFields) {
	if g.enabled(slog.LevelDebug) {
		g.LoggerAdapter.Debug(msg, fields)
	}
}

func (g gatedLogger) Trace(msg string, fields watermill.LogFields) {
	if g.enabled(watermill.LevelTrace) {
		g.LoggerAdapter.Trace(msg, fields)
	}
}

func (g gatedLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return gatedLogger{LoggerAdapter: g.LoggerAdapter.With(fields), log: g.log}
}
