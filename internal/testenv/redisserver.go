package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// startLimit bounds the wait for a started redis-server to answer.
const startLimit = 15 * time.Second

// RedisServer is a redis-server of the test's own on a free port, so that the test can kill it
// and start it again without disturbing the shared one or other tests.
type RedisServer struct {
	t     testing.TB
	path  string
	dir   string
	port  int
	flags []string
	cmd   *exec.Cmd
	done  chan struct{}
}

// StartRedisServer starts redis-server with flags added to its own, and kills it when the test
// ends. The test is skipped when redis-server is not installed.
func StartRedisServer(t testing.TB, flags ...string) *RedisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &RedisServer{t: t, path: path, dir: t.TempDir(), port: port, flags: flags}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

func (r *RedisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// Start runs the server again on the same port and data folder, so that whatever it persisted
// (as its flags allow) is there again, and waits until it answers.
func (r *RedisServer) Start() {
	r.t.Helper()
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--daemonize", "no"}, r.flags...)
	// Not exec.CommandContext(t.Context()): that context ends before the cleanups that stop
	// what uses the server, and the server must outlive them.
	r.cmd = exec.Command(r.path, args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.cmd, r.done)
	client := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer client.Close()
	Eventually(r.t, "redis-server to answer", startLimit, 50*time.Millisecond, func() error { return r.ping(client) })
}

func (r *RedisServer) ping(client *goredis.Client) error {
	select {
	case <-r.done:
		r.t.Fatalf("redis-server exited at start")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return client.Ping(ctx).Err()
}

// Kill stops the server with SIGKILL, as a crash would, and waits until it is gone.
func (r *RedisServer) Kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}
