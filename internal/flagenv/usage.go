// Package flagenv prints the usage of a command whose flags each have an environment
// variable twin, the same way for every command of this module, so that -h tells which
// variable sets what.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// SetUsage makes fs's usage (-h, -help, or a bad flag) list every flag as the flag package
// does, plus the variable that sets it: variable(name) returns it, or "" for a flag that
// has none. The output goes to fs.Output().
func SetUsage(fs *flag.FlagSet, summary string, variable func(flagName string) string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage of %s:\n", fs.Name())
		if summary != "" {
			fmt.Fprintf(w, "%s\n", summary)
		}
		fmt.Fprintf(w, "Each flag not given on the command line is read from its variable, when set.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			var b strings.Builder
			fmt.Fprintf(&b, "  -%s", f.Name)
			kind, usage := flag.UnquoteUsage(f)
			if kind != "" {
				b.WriteString(" " + kind)
			}
			b.WriteString("\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t"))
			if !isZeroDefault(f.DefValue) {
				if kind == "string" {
					fmt.Fprintf(&b, " (default %q)", f.DefValue)
				} else {
					fmt.Fprintf(&b, " (default %s)", f.DefValue)
				}
			}
			if v := variable(f.Name); v != "" {
				fmt.Fprintf(&b, "\n    \tvariable: %s", v)
			} else {
				b.WriteString("\n    \tvariable: none, a flag only")
			}
			fmt.Fprintln(w, b.String())
		})
	}
}

func isZeroDefault(v string) bool {
	switch v {
	case "", "0", "0s", "false", "[]":
		return true
	}
	return false
}
