// Package config owns busbar's declarative model (buses, rules, targets)
// and everything about reading it: Load and Parse read YAML or JSON, expand
// ${ENV} references, validate (every problem at once, as an ErrorList of
// file:line:col: field.path: message), and apply the defaults. Schema is
// the model's JSON Schema; Redacted is the form of a config that may be
// printed.
//
// Patterns and filters are validated by calling the filters package, which
// owns those languages. This package must not start anything, open network
// connections or know about transports beyond their URL schemes: it turns a
// file into a checked Config and nothing more.
package config
