package flagenv

import "strings"

// Variable is the environment twin of a flag: UTS_ and the flag's name in capitals, dashes
// as underscores (-commit-every: UTS_COMMIT_EVERY).
func Variable(flagName string) string {
	return "UTS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Masked hides a secret in a logged setting, but still says whether one is set.
func Masked(secret string) string {
	if secret == "" {
		return ""
	}
	return "***"
}

// List collects a repeatable flag; a comma-separated value counts as several, which is how
// an environment twin names more than one.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

func (l *List) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}
