package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts"
)

// privateRedis is a redis-server of the test's own, so that it can be killed and started
// again without disturbing anyone else.
type privateRedis struct {
	t    *testing.T
	path string
	port int
	cmd  *exec.Cmd
	stop context.CancelFunc // kills the server
	done chan struct{}
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &privateRedis{t: t, path: path, port: port}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start runs the server and waits until it answers.
func (r *privateRedis) start() {
	r.t.Helper()
	// Not t.Context(): it ends before the cleanups that stop the broker, and the server
	// must outlive them.
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	r.cmd = exec.CommandContext(ctx, r.path,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	r.cmd.Dir = r.t.TempDir()
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(r.cmd, r.done)
	client := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer client.Close()
	waitFor(r.t, "redis-server to answer", func() error {
		select {
		case <-r.done:
			return errors.New("redis-server exited")
		default:
		}
		return client.Ping(context.Background()).Err()
	})
}

// kill stops the server the hard way and waits until it is gone.
func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	r.stop()
	<-r.done
	r.cmd = nil
}

func TestRedisOutage(t *testing.T) {
	t.Parallel()
	server := startPrivateRedis(t)
	b := openAt(t, server.url(), Options{})
	s := newStore()
	consume(t, b, s.commit)
	before := newEvents("before", 3)
	publish(t, b, before)
	waitFor(t, "the events published before the outage to be stored", func() error { return s.missing(before) })

	server.kill()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := time.Now()
	if _, err := b.Publish(ctx, newEvents("during", 2)); uts.KindOf(err) != uts.KindUnavailable {
		t.Errorf("Publish while redis is down = %v, want KindUnavailable", err)
	}
	t.Logf("Publish failed after %v", time.Since(start))
	if err := b.Ready(ctx); uts.KindOf(err) != uts.KindUnavailable {
		t.Errorf("Ready while redis is down = %v, want KindUnavailable", err)
	}

	// Restarted without persistence: the stream and the group are gone, the broker is not.
	server.start()
	waitFor(t, "Ready once redis is back", func() error { return b.Ready(ctx) })
	after := newEvents("after", 3)
	publish(t, b, after)
	waitFor(t, "the events published after the outage to be stored", func() error { return s.missing(after) })
	waitIdle(t, b)
}
