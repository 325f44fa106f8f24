// Package transform reshapes events per target: the whole CloudEvent (the
// default), its data, one JSONPath part, a constant, an EventBridge-style
// template, or an expr-lang expression, after masking personal data
// (redact, remove, HMAC hash, partial). A target's transform is compiled
// once, when the config loads (Compile), and applied by the dispatcher to
// every event (Apply); the languages themselves live in the reshape
// subpackage, which config uses to validate transforms.
//
// It also serves the tools that try a transform out: TestTransformHandler
// (POST /v1/test-transform) and Try (busbar test-transform).
//
// It must not import routers, sinks, sources or pipeline: it is pure
// computation, called by the event path.
package transform

import (
	"fmt"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters/transform/reshape"
)

// Spec is a target's transform as configured (Target.Transform).
type Spec = config.Transform

// Meta is what a transform knows of where the event goes: the rule's name
// and the bus's (<busbar.rule-name>, <busbar.bus>; rule and bus in
// expressions).
type Meta = reshape.Meta

// ErrTransform is wrapped by every error Apply returns. Such an event can
// never be transformed (it is not valid JSON, an expression failed on it,
// the output is too large): retrying cannot help, so the dispatcher
// dead-letters it at once.
var ErrTransform = reshape.ErrFailed

// Content types of the bodies Apply returns.
const (
	// ContentTypeCloudEvent is the whole form's: the (masked) event.
	ContentTypeCloudEvent = reshape.ContentTypeCloudEvent
	// ContentTypeJSON is that of JSON outputs.
	ContentTypeJSON = reshape.ContentTypeJSON
	// ContentTypeText is that of text templates, text constants and
	// expressions returning a string.
	ContentTypeText = reshape.ContentTypeText
)

// DefaultMaxBodyBytes bounds a body when Options leave it unset: 4 MiB.
const DefaultMaxBodyBytes = reshape.DefaultMaxBodyBytes

// Options tune Compile.
type Options struct {
	// MaxBodyBytes bounds what one Apply may produce (a template can repeat
	// the whole event up to 100 times); 0 means DefaultMaxBodyBytes. A
	// bigger output fails with ErrTransform.
	MaxBodyBytes int
}

// Transformer is a compiled transform, safe for concurrent use.
type Transformer struct {
	p *reshape.Program
}

// Compile compiles a target's transform. It returns nil, nil when there is
// nothing to do — no transform, or the whole event without masks — so the
// dispatcher can skip the work. A config that loaded never fails here; a
// Spec built in code may, with every problem in a reshape.Errors.
func Compile(spec *config.Transform, opts Options) (*Transformer, error) {
	if spec == nil || spec.FormOf() == reshape.FormWhole && len(spec.Mask) == 0 {
		return nil, nil
	}
	p, err := reshape.Compile(spec.Spec(), reshape.Options{MaxBodyBytes: opts.MaxBodyBytes})
	if err != nil {
		return nil, fmt.Errorf("transform: %w", err)
	}
	return &Transformer{p: p}, nil
}

// Apply reshapes one event, given in structured CloudEvents JSON: masks
// first, then the form. It returns the body to send and its content type
// (ContentTypeCloudEvent for the whole form, ContentTypeJSON, ContentTypeText,
// or the event's datacontenttype for the data form of non-JSON data). The
// body is the caller's. Errors wrap ErrTransform; Apply never panics.
//
// A nil Transformer returns the event itself, as a whole transform would.
func (t *Transformer) Apply(event []byte, meta Meta) (body []byte, contentType string, err error) {
	if t == nil {
		return event, ContentTypeCloudEvent, nil
	}
	return t.p.Apply(event, meta)
}

// Whole reports whether the output is still a CloudEvent (the whole form,
// masked): a sink may then deliver it in its own CloudEvents mode (binary
// or structured) instead of as an opaque body. True for nil.
func (t *Transformer) Whole() bool { return t == nil || t.p.Form() == reshape.FormWhole }

// Form returns the transform's form: whole, data, part, constant, template
// or expr.
func (t *Transformer) Form() string {
	if t == nil {
		return reshape.FormWhole
	}
	return t.p.Form()
}
