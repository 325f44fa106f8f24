package filters

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
)

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
	// extended slice. An error means the event is not valid JSON (a
	// *SyntaxError) or, for adversarial events only, ErrTooComplex.
	Match(event []byte, dst []string) ([]string, error)
}

// ErrTooComplex is returned by Match when an event would take more than
// about a million automaton steps, which only happens when patterns with
// several fields inside different arrays meet events whose large arrays
// match element by element. The event is not matched; route it to a
// dead-letter destination.
var ErrTooComplex = errors.New("filters: event too complex to match (too many combinations of array elements)")

// Option changes a limit of pattern compilation.
type Option func(*options)

type options struct {
	maxLen   int
	maxDepth int
}

func buildOptions(opts []Option) options {
	o := options{maxLen: DefaultMaxPatternLength, maxDepth: DefaultMaxPatternDepth}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithMaxPatternLength sets the longest accepted pattern, in characters of
// its compact JSON form (default 2,048, as in EventBridge). Zero or less
// removes the limit.
func WithMaxPatternLength(n int) Option { return func(o *options) { o.maxLen = n } }

// WithMaxPatternDepth sets how deeply a pattern's JSON may nest (default 32).
func WithMaxPatternDepth(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxDepth = n
		}
	}
}

func (o options) compile() compileOpts { return compileOpts{maxLen: o.maxLen, maxDepth: o.maxDepth} }

// NewMatcher compiles the rules of one bus into a Matcher. Any invalid
// pattern or filter fails the whole call with a *PatternError or
// *FilterError naming the rule.
func NewMatcher(rules []Rule, opts ...Option) (Matcher, error) {
	return newEngine(rules, buildOptions(opts))
}

// ValidatePattern compiles one pattern and reports the first problem as a
// *PatternError whose Path and Offset point into the pattern.
func ValidatePattern(pattern json.RawMessage, opts ...Option) error {
	_, err := compilePattern(pattern, buildOptions(opts).compile())
	return err
}

// PatternError describes an invalid pattern. Path is the location inside the
// pattern as dotted field names with array indexes ("data.amount[0].numeric"),
// empty for the whole pattern. Offset is the byte offset of the offending
// value in the pattern text, or -1 when the problem is the whole pattern.
type PatternError struct {
	Rule   string
	Path   string
	Offset int
	Msg    string
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
	if e.Offset >= 0 {
		s += " (offset " + strconv.Itoa(e.Offset) + ")"
	}
	return s + ": " + e.Msg
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// engine is the Matcher built by NewMatcher.
type engine struct {
	a     *automaton
	rules []ruleEnd
	pool  sync.Pool
}

// ruleEnd is what Match needs of a rule once its pattern matched: name
// and filter side by side, so that a match touches one cache line of a
// large rule set rather than two.
type ruleEnd struct {
	name   string
	filter *filterProgram // nil when the rule has no filter
}

func newEngine(rules []Rule, o options) (*engine, error) {
	e := &engine{a: newAutomaton()}
	co := o.compile()
	pats := make([]*compiledPattern, len(rules))
	for i, r := range rules {
		cp, err := compilePattern(r.Pattern, co)
		if err != nil {
			var pe *PatternError
			if errors.As(err, &pe) {
				pe.Rule = r.Name
			}
			return nil, err
		}
		var fp *filterProgram
		if r.Filter != "" {
			fp, err = compileFilter(r.Filter)
			if err != nil {
				var fe *FilterError
				if errors.As(err, &fe) {
					fe.Rule = r.Name
				}
				return nil, err
			}
		}
		pats[i] = cp
		e.rules = append(e.rules, ruleEnd{name: r.Name, filter: fp})
	}
	rank := rankPaths(pats)
	for i, cp := range pats {
		for _, br := range cp.branches {
			e.a.insert(br, int32(i), rank)
		}
	}
	e.a.finish()
	nstates, npaths, nrules := e.a.nstates, e.a.npaths, len(rules)
	a := e.a
	e.pool.New = func() any {
		sc := newScratch(npaths, nstates, nrules)
		sc.a = a
		return sc
	}
	return e, nil
}

func (e *engine) Match(event []byte, dst []string) (out []string, err error) {
	sc := e.pool.Get().(*scratch)
	defer func() {
		sc.reset()
		e.pool.Put(sc)
	}()
	if err := sc.flatten(event, e.a.paths); err != nil {
		return dst, fmt.Errorf("event is not valid JSON: %w", err)
	}
	if err := sc.run(); err != nil {
		return dst, err
	}
	sortRules(sc.hits)
	for _, r := range sc.hits {
		re := &e.rules[r]
		if re.filter != nil && !re.filter.eval(sc, event) {
			continue
		}
		dst = append(dst, re.name)
	}
	return dst, nil
}

// sortRules sorts the matched rules into rule order. Answers are usually a
// few rules, which an insertion sort orders faster than the general sort.
func sortRules(h []int32) {
	if len(h) > 12 {
		slices.Sort(h)
		return
	}
	for i := 1; i < len(h); i++ {
		x, j := h[i], i
		for ; j > 0 && h[j-1] > x; j-- {
			h[j] = h[j-1]
		}
		h[j] = x
	}
}

// run walks the automaton from root, turning the step limit into an error.
func (sc *scratch) run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(walkAbort); !ok {
				panic(r)
			}
			sc.hits = sc.hits[:0]
			err = ErrTooComplex
		}
	}()
	sc.rgen++
	if sc.rgen == 0 {
		clear(sc.ruleGen)
		sc.rgen = 1
	}
	sc.walk(0)
	return nil
}
