package main

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

// privateRedis is a redis-server of the test's own on a free port, so that the test can kill
// it and start it again without disturbing the shared one.
type privateRedis struct {
	t     *testing.T
	path  string
	dir   string
	port  int
	flags []string
	cmd   *exec.Cmd
	done  chan struct{}
}

// startPrivateRedis starts redis-server with flags added to its own; it skips the test when
// redis-server is not installed.
func startPrivateRedis(t *testing.T, flags ...string) *privateRedis {
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
	r := &privateRedis{t: t, path: path, dir: t.TempDir(), port: port, flags: flags}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

func (r *privateRedis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// Start runs the server on its port and data folder, and waits until it answers.
func (r *privateRedis) Start() {
	r.t.Helper()
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--daemonize", "no"}, r.flags...)
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
	eventually(r.t, "redis-server to answer", 15*time.Second, func() error {
		select {
		case <-r.done:
			r.t.Fatalf("redis-server exited at start")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return client.Ping(ctx).Err()
	})
}

// Kill stops the server with SIGKILL and waits until it is gone.
func (r *privateRedis) Kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Client is a client of the test's own, closed at the end.
func (r *privateRedis) Client() *goredis.Client { return redisClient(r.t, r.URL()) }
