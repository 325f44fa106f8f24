package filters

import "encoding/json"

// Rule is what the matcher needs to know about one rule of a bus.
type Rule struct {
	// Name is unique within the bus; Match reports matches by name.
	Name string
	// Pattern is an EventBridge event pattern (a JSON object). Empty or null
	// matches every event.
	Pattern json.RawMessage
	// Filter is an optional expr-lang expression that must also hold.
	Filter string
}

// Matcher selects the rules of one bus that an event matches. It is safe for
// concurrent use and immutable: changing rules means building a new Matcher.
type Matcher interface {
	// Match appends to dst the names of the rules whose pattern matches the
	// event, given as structured-mode CloudEvents JSON, and returns the
	// extended slice. An error means the event is not valid JSON.
	Match(event []byte, dst []string) ([]string, error)
}

// NewMatcher compiles the rules of one bus into a Matcher. Any invalid
// pattern fails the whole call with a *PatternError naming the rule.
func NewMatcher(rules []Rule) (Matcher, error) {
	return newSimpleMatcher(rules)
}

// ValidatePattern compiles one pattern and reports the first problem as a
// *PatternError whose Path points into the pattern.
func ValidatePattern(pattern json.RawMessage) error {
	_, err := compileSimple(pattern)
	return err
}

// PatternError describes an invalid pattern. Path is the location inside the
// pattern as dotted field names ("data.amount"), empty for the whole pattern.
type PatternError struct {
	Rule string
	Path string
	Msg  string
}

func (e *PatternError) Error() string {
	s := ""
	if e.Rule != "" {
		s = "rule " + quote(e.Rule) + ": "
	}
	s += "pattern"
	if e.Path != "" {
		s += " at " + e.Path
	}
	return s + ": " + e.Msg
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
