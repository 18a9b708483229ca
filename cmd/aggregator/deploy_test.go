package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/testenv"
)

// The container engine cannot run in the tests, so these check docker-compose.yml, the
// Dockerfile and CI against each other and against the binaries, and run the binaries with
// the compose file's environment.

// TestComposeServices checks the shape of the deployment: the five services, Redis with the
// append-only file synced on every write, health checks wherever something waits on a
// service, named volumes, one network, and only the proxy's port published, so that
// --scale aggregator=N starts N replicas (TestComposeProxy checks the proxy's wiring).
func TestComposeServices(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	services := c.mapAt("services")
	if got := slices.Sorted(maps.Keys(services)); !slices.Equal(got, []string{"aggregator", "postgres", "proxy", "publisher", "redis"}) {
		t.Fatalf("services %v; want aggregator, postgres, proxy, publisher, redis", got)
	}
	if img := c.stringAt("services", "postgres", "image"); img != "postgres:16" {
		t.Errorf("postgres image %q, want postgres:16", img)
	}
	if img := c.stringAt("services", "redis", "image"); img != "redis:7" {
		t.Errorf("redis image %q, want redis:7", img)
	}
	command := strings.Join(c.listAt("services", "redis", "command"), " ")
	if !strings.Contains(command, "--appendonly yes") || !strings.Contains(command, "--appendfsync always") {
		t.Errorf("redis command %q: a 202 must survive a Redis restart (--appendonly yes --appendfsync always)", command)
	}

	if c.stringAt("services", "aggregator", "build") != "." {
		t.Errorf("the aggregator must be built from this repository (build: .)")
	}
	image := c.stringAt("services", "aggregator", "image")
	if image == "" || c.stringAt("services", "publisher", "image") != image {
		t.Errorf("the publisher must run the aggregator's image %q", image)
	}
	if ep := c.listAt("services", "publisher", "entrypoint"); !slices.Equal(ep, []string{"/usr/local/bin/publisher"}) {
		t.Errorf("publisher entrypoint %v, want [/usr/local/bin/publisher]", ep)
	}
	env := c.environment("aggregator")
	if db := env["UTS_DB"]; !strings.HasPrefix(db, "postgres://") || !strings.Contains(db, "@postgres:5432/") {
		t.Errorf("UTS_DB %q: want the postgres service", db)
	}
	if broker := env["UTS_BROKER"]; !strings.HasPrefix(broker, "redis://redis:6379") {
		t.Errorf("UTS_BROKER %q: want the redis service", broker)
	}
	if u := c.environment("publisher")["UTS_URL"]; u != "http://proxy:8080" {
		t.Errorf("publisher UTS_URL %q, want http://proxy:8080: the way in a user takes", u)
	}
	if pe := c.environment("publisher"); pe["UTS_EVENTS"] != "20000" || pe["UTS_DUPLICATES"] != "0.3" {
		t.Errorf("the publisher must send 20000 events with 30%% duplicates: %v", pe)
	}
	if r := c.stringAt("services", "publisher", "restart"); r != "no" {
		t.Errorf("publisher restart %q: it runs once", r)
	}

	// Ports: only the proxy's. A port published by the aggregator would be taken by its
	// first replica, and every other replica of --scale would fail to start.
	for name := range services {
		ports := c.listAt("services", name, "ports")
		switch {
		case name == "proxy" && !slices.Equal(ports, []string{"8080:8080"}):
			t.Errorf("proxy ports %v, want [8080:8080]", ports)
		case name != "proxy" && c.at("services", name, "ports") != nil:
			t.Errorf("%s publishes ports %v; only the proxy should", name, ports)
		}
	}
	if _, port, err := net.SplitHostPort(env["UTS_ADDR"]); err != nil || port != "8080" {
		t.Errorf("UTS_ADDR %q: want :8080, the published port", env["UTS_ADDR"])
	}

	// Health checks on every long-running service; the aggregator's runs the binary itself.
	for _, name := range []string{"postgres", "redis", "aggregator"} {
		if len(c.listAt("services", name, "healthcheck", "test")) == 0 {
			t.Errorf("%s has no healthcheck test", name)
		}
	}
	probe := c.listAt("services", "aggregator", "healthcheck", "test")
	if len(probe) != 4 || probe[0] != "CMD" || probe[1] != "/usr/local/bin/aggregator" || probe[2] != "-probe" {
		t.Errorf("aggregator healthcheck %v: want [CMD /usr/local/bin/aggregator -probe URL] (the image has no shell)", probe)
	} else if u, err := url.Parse(probe[3]); err != nil || u.Port() != "8080" || u.Path != "/readyz" {
		t.Errorf("aggregator healthcheck URL %q: want /readyz on port 8080", probe[3])
	}
	// Over TCP: the image's temporary init server listens on the Unix socket only, so a
	// check through the socket can pass before the real server is up.
	if pg := strings.Join(c.listAt("services", "postgres", "healthcheck", "test"), " "); !strings.Contains(pg, "pg_isready -h 127.0.0.1") {
		t.Errorf("postgres healthcheck %q: want pg_isready -h 127.0.0.1 (TCP, not the Unix socket)", pg)
	}
	for service, deps := range map[string][]string{"aggregator": {"postgres", "redis"}, "publisher": {"aggregator"}, "proxy": {"aggregator"}} {
		for _, dep := range deps {
			if cond := c.stringAt("services", service, "depends_on", dep, "condition"); cond != "service_healthy" {
				t.Errorf("%s depends_on %s: condition %q, want service_healthy", service, dep, cond)
			}
		}
	}

	// Named volumes for the data, one network for everyone.
	volumes := c.mapAt("volumes")
	for name, path := range map[string]string{"postgres": "/var/lib/postgresql/data", "redis": "/data"} {
		mounts := c.listAt("services", name, "volumes")
		if len(mounts) != 1 {
			t.Errorf("%s volumes %v: want one named volume on %s", name, mounts, path)
			continue
		}
		volume, target, _ := strings.Cut(mounts[0], ":")
		if _, declared := volumes[volume]; !declared || target != path {
			t.Errorf("%s volume %q: want a declared named volume on %s", name, mounts[0], path)
		}
	}
	networks := slices.Collect(maps.Keys(c.mapAt("networks")))
	if len(networks) != 1 {
		t.Fatalf("networks %v: want one", networks)
	}
	for name := range services {
		if got := c.listAt("services", name, "networks"); !slices.Equal(got, networks) {
			t.Errorf("%s networks %v, want %v", name, got, networks)
		}
	}
}

// TestComposeVariablesAreRead: every variable the compose file sets for our binaries is one
// they read; a misspelt one would be ignored without a word.
func TestComposeVariablesAreRead(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries to read the publisher's flags")
	}
	t.Parallel()
	c := readCompose(t)
	_, publisherBin := binaries(t)
	read := map[string][]string{"aggregator": envVariables(), "publisher": publisherVariables(t, publisherBin)}
	for service, known := range read {
		env := c.environment(service)
		if len(env) == 0 {
			t.Errorf("%s sets no variables", service)
		}
		for name := range env {
			if !slices.Contains(known, name) {
				t.Errorf("%s sets %s, which it does not read (it reads %v)", service, name, known)
			}
		}
	}
}

// publisherVariables lists the variables the publisher reads: each flag's UTS_ twin, as its
// -help lists the flags. TestComposeEnvironmentRuns shows the twins are read.
func publisherVariables(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "-help").CombinedOutput()
	if err != nil {
		t.Fatalf("publisher -help: %v\n%s", err, out)
	}
	flagLine := regexp.MustCompile(`^  -([a-z][a-z0-9-]*)`)
	var names []string
	for line := range strings.Lines(string(out)) {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			names = append(names, "UTS_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_")))
		}
	}
	if !slices.Contains(names, "UTS_URL") || !slices.Contains(names, "UTS_EVENTS") {
		t.Fatalf("publisher -help lists no -url or -events; its format changed?\n%s", out)
	}
	return names
}

// TestImageBuildsWithTheCIScript: the image is built by the script CI runs, so a build that
// passes CI builds the image, and the binaries land where the compose file runs them.
func TestImageBuildsWithTheCIScript(t *testing.T) {
	t.Parallel()
	runsBuild := func(file, prefix string) bool {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			line := strings.TrimSpace(s.Text())
			if strings.HasPrefix(line, prefix) && strings.Contains(line, "./scripts/build") {
				return true
			}
		}
		return false
	}
	if !runsBuild("../../Dockerfile", "RUN ") {
		t.Error("the Dockerfile has no RUN ./scripts/build")
	}
	if !runsBuild("../../.ci/run", "./scripts/build") {
		t.Error(".ci/run does not run ./scripts/build")
	}
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"aggregator", "publisher"} {
		if !regexp.MustCompile(`(?m)^COPY --from=build .*/` + bin + `\b.* /usr/local/bin/`).Match(dockerfile) {
			t.Errorf("the Dockerfile does not copy %s to /usr/local/bin/, where docker-compose.yml runs it", bin)
		}
	}
	if info, err := os.Stat("../../scripts/build"); err != nil || info.Mode()&0o111 == 0 {
		t.Errorf("scripts/build must be executable: %v", err)
	}
}

// TestComposeEnvironmentRuns runs the aggregator and the publisher as the compose file
// does: no flags, only its environment, with the service host names pointed at the test's
// own schema and Redis prefix. The publisher's -verify passes only if the variables took.
func TestComposeEnvironmentRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries")
	}
	t.Parallel()
	db := testenv.PostgresSchema(t)
	redisURL := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t, redisURL)
	aggregatorBin, publisherBin := binaries(t)
	c := readCompose(t)

	addr := testenv.FreeAddr(t)
	env := c.environment("aggregator")
	env["UTS_ADDR"], env["UTS_DB"], env["UTS_BROKER"], env["UTS_REDIS_PREFIX"] = addr, db, redisURL, prefix
	agg := startWithEnv(t, aggregatorBin, env)

	// The compose health check, aimed at this aggregator.
	probe := c.listAt("services", "aggregator", "healthcheck", "test")
	if len(probe) != 4 {
		t.Fatalf("aggregator healthcheck %v", probe)
	}
	target := strings.Replace(probe[3], "127.0.0.1:8080", addr, 1)
	eventually(t, "the compose health check to pass", 30*time.Second, func() error {
		out, err := exec.Command(aggregatorBin, probe[2], target).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	pubEnv := c.environment("publisher")
	pubEnv["UTS_URL"] = agg.URL
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, publisherBin)
	cmd.Env = envList(pubEnv)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("publisher with the compose environment: %v\n%s\naggregator:\n%s", err, out, agg.Logs())
	}
	s := waitDrained(t, agg.URL)
	if s.Received != 20000 || s.UniqueProcessed != 14000 || s.DuplicateDropped != 6000 {
		t.Errorf("stats %+v; want 20000 received, 14000 unique, 6000 duplicates", s)
	}
	if logs := agg.Logs(); !strings.Contains(logs, `"msg":"aggregator started"`) {
		t.Errorf("UTS_LOG_FORMAT=json not applied:\n%s", logs)
	}
	agg.Stop(t)
}

// startWithEnv starts the aggregator with no flags and exactly env as its environment, and
// waits until it answers /healthz on env's UTS_ADDR.
func startWithEnv(t *testing.T, bin string, env map[string]string) *aggregatorProcess {
	t.Helper()
	logs := &strings.Builder{}
	cmd := exec.Command(bin)
	cmd.Env = envList(env)
	cmd.Stdout = &lockedWriter{w: logs}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &aggregatorProcess{URL: "http://" + env["UTS_ADDR"], cmd: cmd, done: make(chan struct{}), logs: logs}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Kill)
	eventually(t, "the aggregator to answer /healthz", 30*time.Second, func() error {
		select {
		case <-p.done:
			t.Fatalf("aggregator exited at start:\n%s", p.Logs())
		default:
		}
		resp, err := http.Get(p.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return p
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	return list
}

// TestComposeStopWaitsForTheDrain: on SIGTERM the aggregator waits up to the shutdown
// timeout for the requests in flight, then up to as long again for the consumers to drain.
// A stop_grace_period shorter than both would SIGKILL it mid-drain.
func TestComposeStopWaitsForTheDrain(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	env := c.environment("aggregator")
	cfg, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("the compose environment: %v", err)
	}
	grace, err := time.ParseDuration(c.stringAt("services", "aggregator", "stop_grace_period"))
	if err != nil {
		t.Fatalf("aggregator stop_grace_period: %v", err)
	}
	if grace < 2*cfg.ShutdownTimeout {
		t.Errorf("stop_grace_period %v is shorter than the drain it must cover, 2 × the shutdown timeout %v", grace, cfg.ShutdownTimeout)
	}
}
