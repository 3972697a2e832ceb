package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// Error is an invalid configuration. cmd/etcdshim prints each of its Lines
// on a line of its own and exits with status 2.
type Error struct {
	// Msg is a problem that is not about one setting's value (two settings
	// that exclude each other, a missing upstream).
	Msg string
	// Problems are the settings whose values are invalid, each named where
	// it was given.
	Problems []Problem
}

// Problem is one setting whose value is invalid.
type Problem struct {
	// Source names where the value was given: "--health-interval",
	// "ETCDSHIM_HEALTH_INTERVAL", or "health-interval in /etc/etcdshim.yaml".
	// Empty until Load knows it; Key is shown as a flag then.
	Source string
	// Key is the setting (the flag name), or the unknown key of a file;
	// empty for a problem of several settings together, said by Why alone.
	Key string
	// Value is the value as given.
	Value string
	// Why says what a valid value looks like.
	Why string
	// Unknown marks a file key that is no setting.
	Unknown bool
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Why
	}
	if p.Unknown {
		return fmt.Sprintf("unknown key %q in %s: not a setting (see etcdshim --help for the settings)", p.Key, p.Source)
	}
	src := p.Source
	if src == "" {
		src = "--" + p.Key
	}
	name, where, inFile := strings.Cut(src, " in ")
	s := fmt.Sprintf("invalid %s %q", name, p.Value)
	if inFile {
		s += " in " + where
	}
	return s + ": " + p.Why
}

// Lines are the problems, one per line, without a trailing newline.
func (e *Error) Lines() []string {
	var out []string
	if e.Msg != "" {
		out = append(out, e.Msg)
	}
	for _, p := range e.Problems {
		out = append(out, p.String())
	}
	return out
}

func (e *Error) Error() string { return strings.Join(e.Lines(), "\n") }

func invalid(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// IsInvalid reports whether err is a configuration error.
func IsInvalid(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}

// FlagError turns pflag's report of a flag value it could not parse into an
// Error naming the flag and the value; other errors come back unchanged.
func FlagError(err error) error {
	var ive *pflag.InvalidValueError
	if !errors.As(err, &ive) {
		return err
	}
	f := ive.GetFlag()
	return &Error{Problems: []Problem{{Key: f.Name, Value: ive.GetValue(), Why: want(f.Value.Type(), ive.Unwrap())}}}
}

// want says in plain words what a value of a setting of this type looks
// like; cause is shown for types without a plainer word.
func want(typ string, cause error) string {
	switch typ {
	case "duration":
		return "want a duration such as 1s, 500ms or 2m"
	case "int", "int64", "uint", "uint64":
		return "want a whole number"
	case "bool":
		return "want true or false"
	case "stringToString":
		return "want name=value pairs separated by commas"
	}
	if cause != nil {
		return strings.Join(strings.Fields(cause.Error()), " ")
	}
	return "not a valid " + typ
}
