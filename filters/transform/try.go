package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/busbar/busbar/config"
)

// EventError is an event Try cannot use: not a JSON object.
type EventError struct{ Msg string }

func (e *EventError) Error() string { return "event: " + e.Msg }

// Result is what a transform made of an event.
type Result struct {
	Body        []byte
	ContentType string
	Form        string
}

// Try compiles the transform in spec (YAML or JSON, what a target's
// transform: holds; name names it in errors and selects strict JSON when it
// ends in .json) and applies it to event. ${ENV} references in spec are
// expanded with lookup (nil: none is set). Errors are a config.ErrorList for
// the transform, an *EventError for the event, or wrap ErrTransform when
// the transform fails on this event — which the event path would
// dead-letter.
func Try(spec []byte, name string, lookup func(string) (string, bool), event []byte, meta Meta) (Result, error) {
	tr, err := config.ParseTransform(spec, name, lookup)
	if err != nil {
		return Result{}, err
	}
	if err := checkEvent(event); err != nil {
		return Result{}, err
	}
	t, err := Compile(tr, Options{})
	if err != nil {
		return Result{}, err // validated already: not expected
	}
	body, ct, err := t.Apply(event, meta)
	if err != nil {
		return Result{}, err
	}
	return Result{Body: body, ContentType: ct, Form: t.Form()}, nil
}

func checkEvent(event []byte) error {
	t := bytes.TrimSpace(event)
	if len(t) == 0 || t[0] != '{' {
		return &EventError{Msg: "must be a JSON object (a structured-mode CloudEvent)"}
	}
	if !json.Valid(t) {
		var x any
		err := json.Unmarshal(t, &x)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return &EventError{Msg: fmt.Sprintf("not valid JSON: %s (at byte %d)", se.Error(), se.Offset)}
		}
		return &EventError{Msg: "not valid JSON"}
	}
	return nil
}
