// Package config gives every glasshouse main the same way to be
// configured: command-line flags, each with an environment variable as
// fallback (flag > environment > default), and a usage text that names
// both.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Flags is a flag.FlagSet whose defaults come from the environment.
type Flags struct {
	*flag.FlagSet
	getenv func(string) string
	errs   []error
	checks []func() error
}

// Check adds a check that Parse runs on the parsed values: a setting out
// of range is refused with the bad flags, before anything starts.
func (f *Flags) Check(check func() error) { f.checks = append(f.checks, check) }

// NewFlags returns an empty set for the program name, reading the
// environment through getenv. Usage and errors go to output.
func NewFlags(name string, getenv func(string) string, output io.Writer) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	return &Flags{FlagSet: fs, getenv: getenv}
}

func (f *Flags) usage(usage, env string) string {
	if env == "" {
		return usage
	}
	return fmt.Sprintf("%s [$%s]", usage, env)
}

// String defines a string flag that falls back to env.
func (f *Flags) String(name, env, def, usage string) *string {
	if v := f.lookup(env); v != "" {
		def = v
	}
	return f.FlagSet.String(name, def, f.usage(usage, env))
}

// Duration defines a duration flag (like "250ms" or "2s") that falls back
// to env.
func (f *Flags) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	if v := f.lookup(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q is not a duration (like 500ms or 2s)", env, v))
		} else {
			def = d
		}
	}
	return f.FlagSet.Duration(name, def, f.usage(usage, env))
}

// Bool defines a boolean flag that falls back to env ("true", "1"...).
func (f *Flags) Bool(name, env string, def bool, usage string) *bool {
	if v := f.lookup(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q is not a boolean", env, v))
		} else {
			def = b
		}
	}
	return f.FlagSet.Bool(name, def, f.usage(usage, env))
}

// Int defines an integer flag that falls back to env.
func (f *Flags) Int(name, env string, def int, usage string) *int {
	if v := f.lookup(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q is not an integer", env, v))
		} else {
			def = n
		}
	}
	return f.FlagSet.Int(name, def, f.usage(usage, env))
}

// Float defines a float flag that falls back to env.
func (f *Flags) Float(name, env string, def float64, usage string) *float64 {
	if v := f.lookup(env); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q is not a number", env, v))
		} else {
			def = x
		}
	}
	return f.FlagSet.Float64(name, def, f.usage(usage, env))
}

func (f *Flags) lookup(env string) string {
	if env == "" {
		return ""
	}
	return f.getenv(env)
}

// Parse parses args and reports bad environment values alongside bad flags.
func (f *Flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", f.Args())
	}
	if err := errors.Join(f.errs...); err != nil {
		return err
	}
	for _, check := range f.checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}
