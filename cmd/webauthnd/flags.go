package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parseFlags parses args after filling each flag from its WEBAUTHND_* environment variable,
// so that flags win over the environment. A list flag takes a comma-separated variable.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "WEBAUTHND_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		if v == "" || err != nil {
			return
		}
		values := []string{v}
		if _, ok := f.Value.(*listFlag); ok {
			values = strings.Split(v, ",")
		}
		for _, x := range values {
			if e := f.Value.Set(strings.TrimSpace(x)); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

// autoBool is a boolean flag that may be left unset ("auto"): --demo, --demo=true, --demo=false.
type autoBool struct{ set, v bool }

func (b *autoBool) String() string {
	if b == nil || !b.set {
		return "auto"
	}
	return strconv.FormatBool(b.v)
}

func (b *autoBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("give true or false")
	}
	b.set, b.v = true, v
	return nil
}

// IsBoolFlag lets --demo stand alone.
func (b *autoBool) IsBoolFlag() bool { return true }

// or is the flag's value, or def when it was not given.
func (b autoBool) or(def bool) bool {
	if b.set {
		return b.v
	}
	return def
}
