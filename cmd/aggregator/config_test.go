package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigPrecedence(t *testing.T) {
	env := map[string]string{"UTS_ADDR": ":9000", "UTS_WORKERS": "7", "UTS_TOKEN": "a, b", "UTS_LINGER": "5ms"}
	c, err := parseConfig([]string{"-workers", "3"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9000" {
		t.Errorf("environment not applied: addr %q", c.Addr)
	}
	if c.Workers != 3 {
		t.Errorf("a flag must beat its variable: workers %d", c.Workers)
	}
	if !slices.Equal(c.Tokens, []string{"a", "b"}) || c.Linger != 5*time.Millisecond {
		t.Errorf("tokens %v linger %v", c.Tokens, c.Linger)
	}
	d, err := parseConfig(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d.Addr != ":8080" || d.DB != "sqlite:./data/uts.db" || d.Broker != "" || d.Limits.MaxBatchEvents != 10_000 {
		t.Errorf("defaults: %+v", d)
	}
	if d.BodyTimeout != 30*time.Second || d.IdleTimeout != 60*time.Second || d.MaxBodyMemory != 256<<20 {
		t.Errorf("slow-client defaults: body %v idle %v memory %d", d.BodyTimeout, d.IdleTimeout, d.MaxBodyMemory)
	}
	slow := map[string]string{"UTS_BODY_TIMEOUT": "2s", "UTS_IDLE_TIMEOUT": "3s", "UTS_MAX_BODY_MEMORY": "33554432"}
	e, err := parseConfig(nil, func(k string) string { return slow[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if e.BodyTimeout != 2*time.Second || e.IdleTimeout != 3*time.Second || e.MaxBodyMemory != 32<<20 {
		t.Errorf("slow-client variables not applied: body %v idle %v memory %d", e.BodyTimeout, e.IdleTimeout, e.MaxBodyMemory)
	}
}

// TestCommitDefaultsFollowTheStore: one worker without a linger, waiting up to 1 ms for
// the last commit's cohort, where one writer commits (SQLite with the in-process queue), and
// no cohort wait if another worker count or a linger is given; two workers, 2 ms and no
// cohort wait elsewhere; and a setting given by flag or variable is kept whatever the store.
func TestCommitDefaultsFollowTheStore(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		env        map[string]string
		workers    int
		linger     time.Duration
		cohortWait time.Duration
	}{
		{nil, nil, 1, 0, time.Millisecond},
		{[]string{"-db", "/tmp/plain.db"}, nil, 1, 0, time.Millisecond},
		{[]string{"-db", "postgres://h/db"}, nil, 2, 2 * time.Millisecond, 0},
		{[]string{"-broker", "redis://h:6379/0"}, nil, 2, 2 * time.Millisecond, 0},
		{nil, map[string]string{"UTS_DB": "postgresql://h/db"}, 2, 2 * time.Millisecond, 0},
		{[]string{"-linger", "3ms"}, nil, 1, 3 * time.Millisecond, 0},
		{nil, map[string]string{"UTS_WORKERS": "4"}, 4, 0, 0},
		{[]string{"-workers", "3", "-cohort-wait", "1ms"}, nil, 3, 0, time.Millisecond},
		{[]string{"-db", "postgres://h/db", "-linger", "0"}, nil, 2, 0, 0},
		{[]string{"-db", "postgres://h/db", "-workers", "1"}, map[string]string{"UTS_LINGER": "0s"}, 1, 0, 0},
		{[]string{"-cohort-wait", "0"}, nil, 1, 0, 0},
		{nil, map[string]string{"UTS_COHORT_WAIT": "300us"}, 1, 0, 300 * time.Microsecond},
		{[]string{"-db", "postgres://h/db", "-linger", "0", "-cohort-wait", "2ms"}, nil, 2, 0, 2 * time.Millisecond},
	} {
		c, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.env, err)
		}
		if c.Workers != tc.workers || c.Linger != tc.linger || c.CohortWait != tc.cohortWait {
			t.Errorf("%v %v: workers %d linger %v cohort wait %v, want %d, %v and %v", tc.args, tc.env,
				c.Workers, c.Linger, c.CohortWait, tc.workers, tc.linger, tc.cohortWait)
		}
	}
}

func TestConfigRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-queue-events", "0"}, {"-workers", "0"}, {"-commit-events", "-1"}, {"-db", "mysql://x"}, {"-db", ""}, {"-broker", "nats://x"},
		{"-log-format", "xml"}, {"-linger", "-1s"}, {"-cohort-wait", "-1ms"}, {"-max-body-bytes", "0"}, {"-log-level", "loud"},
		{"-body-timeout", "0s"}, {"-idle-timeout", "-1s"}, {"-max-body-memory", "1000"},
		{"-pprof", ":6060"}, {"-pprof", "0.0.0.0:6060"}, {"-pprof", "10.0.0.1:6060"}, {"-pprof", "6060"},
	} {
		if _, err := parseConfig(args, noEnv, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parseConfig(nil, func(k string) string {
		if k == "UTS_WORKERS" {
			return "many"
		}
		return ""
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "UTS_WORKERS") {
		t.Errorf("a bad variable must be named: %v", err)
	}
}

func TestStoreKind(t *testing.T) {
	for in, want := range map[string][2]string{
		"sqlite:./data/uts.db":           {"sqlite", "./data/uts.db"},
		"sqlite:///tmp/x.db":             {"sqlite", "/tmp/x.db"},
		"/tmp/plain.db":                  {"sqlite", "/tmp/plain.db"},
		"postgres://u:p@h/db":            {"postgres", "postgres://u:p@h/db"},
		"postgresql://h/db?sslmode=none": {"postgres", "postgresql://h/db?sslmode=none"},
	} {
		kind, target, err := storeKind(in)
		if err != nil || kind != want[0] || target != want[1] {
			t.Errorf("storeKind(%q) = %q %q %v, want %v", in, kind, target, err, want)
		}
	}
}

func TestConfigLogMasksSecrets(t *testing.T) {
	c, err := parseConfig([]string{"-db", "postgres://user:hunter2@db/x", "-token", "s3cret"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logged := fmt.Sprint(c.logAttrs()...)
	if strings.Contains(logged, "hunter2") || strings.Contains(logged, "s3cret") || !strings.Contains(logged, "user") {
		t.Fatalf("the start log must mask secrets and keep the rest: %s", logged)
	}
}

func TestConfigRetention(t *testing.T) {
	const day = 24 * time.Hour
	d, err := parseConfig(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Retention.IsForever() || d.ExpireInterval != time.Minute {
		t.Fatalf("default retention %s, interval %v; want forever, 1m", d.Retention, d.ExpireInterval)
	}
	env := map[string]string{"UTS_RETENTION": "30d,orders=7d", "UTS_DEDUP_RETENTION": "90d"}
	c, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention.For("orders") != 7*day || c.Retention.For("clicks") != 30*day || c.Retention.Fingerprints != 90*day {
		t.Fatalf("from the environment: %s, dedup %v", c.Retention, c.Retention.Fingerprints)
	}
	f, err := parseConfig([]string{"-retention", "12h", "-retention", "audit=forever,orders=2d"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.Retention.For("x") != 12*time.Hour || f.Retention.For("audit") != 0 || f.Retention.For("orders") != 2*day {
		t.Fatalf("repeated flags: %s", f.Retention)
	}
	for _, args := range [][]string{
		{"-retention", "soon"}, {"-retention", "=7d"}, {"-retention", "-7d"},
		{"-dedup-retention", "1d"},                          // events kept for ever, keys not
		{"-retention", "7d", "-dedup-retention", "1d"},      // keys forgotten while events held
		{"-retention", "1d,o=8d", "-dedup-retention", "7d"}, // a topic holds longer
		{"-expire-interval", "0s"},
	} {
		if _, err := parseConfig(args, noEnv, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
