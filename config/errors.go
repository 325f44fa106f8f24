package config

import (
	"sort"
	"strconv"
	"strings"
)

// Pos is a place in a config file. Line and Column count from 1; zero means
// unknown (for example in a config built in code rather than loaded).
type Pos struct {
	Line   int
	Column int
}

// Error is one problem in a config: where it is, which field, and what to do
// about it. Error() prints it as
//
//	busbar.yaml:14:7: rules[2].targets[0].timeout: "5 seconds" is not a duration (use Go syntax like "5s", "1m30s")
type Error struct {
	// File is the name given to Load or Parse; empty for configs built in code.
	File string
	// Pos is where the problem is in File.
	Pos Pos
	// Path is the field path inside the config ("rules[2].targets[0].timeout");
	// empty when the problem is the file as a whole.
	Path string
	// Msg says what is wrong and how to fix it. It never holds the value of a
	// header or of anything that came from an environment variable.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	}
	if e.Pos.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(e.Pos.Line))
		if e.Pos.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Pos.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one config, sorted by position. Load,
// Parse and Validate return one (as an error) whenever anything is wrong; use
// errors.As to get at the entries.
type ErrorList []*Error

// Error prints one problem per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders the list by file, line, column and path; problems without a
// line (the file as a whole) come first.
func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Column != b.Pos.Column {
			return a.Pos.Column < b.Pos.Column
		}
		return a.Path < b.Path
	})
}

// err returns the list as an error, or nil when it is empty (a nil ErrorList
// in an error interface would not compare equal to nil).
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	return l
}

// maxErrors bounds how many problems one load reports; past it the loader
// stops, so that a hostile or badly broken file cannot produce millions.
const maxErrors = 100
