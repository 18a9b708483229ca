package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestHelpIsNotAnError: -h and -help print the usage and succeed (main exits 0), and the
// usage names, under each flag, the variable that sets it; -probe, which has none on
// purpose, says so.
func TestHelpIsNotAnError(t *testing.T) {
	t.Parallel()
	variables := map[string]string{} // flag -> variable, as parseConfig binds them
	for _, arg := range []string{"-h", "-help"} {
		var stderr bytes.Buffer
		if err := run(context.Background(), []string{arg}, noEnv, io.Discard, &stderr); err != nil {
			t.Fatalf("run %s: %v", arg, err)
		}
		usage := stderr.String()
		for _, variable := range envVariables() {
			name := "-" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(variable, "UTS_"), "_", "-"))
			variables[name] = variable
			i := strings.Index(usage, "\n  "+name+" ")
			if i < 0 {
				i = strings.Index(usage, "\n  "+name+"\n")
			}
			if i < 0 {
				t.Errorf("%s: the usage does not list %s", arg, name)
				continue
			}
			entry, _, _ := strings.Cut(usage[i+1:], "\n  -")
			if !strings.Contains(entry, "variable: "+variable) {
				t.Errorf("%s: the usage of %s does not name %s:\n%s", arg, name, variable, entry)
			}
		}
		if !strings.Contains(usage, "-start-timeout duration") || !strings.Contains(usage, "variable: UTS_START_TIMEOUT") {
			t.Errorf("%s: no -start-timeout in the usage:\n%s", arg, usage)
		}
		i := strings.Index(usage, "\n  -probe ")
		if entry, _, _ := strings.Cut(usage[i+1:], "\n  -"); i < 0 || !strings.Contains(entry, "variable: none") {
			t.Errorf("%s: -probe must say it has no variable:\n%s", arg, entry)
		}
	}
	if len(variables) < 15 {
		t.Fatalf("only %d variables checked", len(variables))
	}
	if err := run(context.Background(), []string{"-no-such-flag"}, noEnv, io.Discard, io.Discard); err == nil {
		t.Error("an unknown flag must still be an error")
	}
}
