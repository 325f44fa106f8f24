// Package reshape compiles and runs transforms: the forms (whole, data,
// part, constant, template, expr) and masks that turn an event into what
// one target receives. It reads the structured CloudEvents JSON of an event
// in place, so numbers keep their exact text and a template costs about a
// microsecond.
//
// It does not import config, so that config can compile transforms to
// validate them; the transform package adapts config.Transform to Spec and
// is what the event path uses. It must not import routers, sinks, sources
// or pipeline: it is pure computation.
package reshape
