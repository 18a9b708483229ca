package publisher

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// plainTransport is a lean HTTP/1.1 RoundTripper for plain http:// aggregators reached
// without a proxy, which is how the publisher is run against them. Each round trip happens
// in the caller's goroutine: the request is written and the answer read on a kept-alive
// connection that the caller holds until the answer's body is read.
//
// net/http's Transport gives every connection a reading and a writing goroutine and hands
// each request between them over channels, and http.Client's Timeout adds a context with a
// timer; with one small event per request, that was a good part of the publisher's CPU,
// which shares the machine with the aggregator it measures (issue #11). Here the timeout
// is the connection's deadline, and cancelling the request's context sets a deadline in the
// past. The parsing is net/http's own (Request.Write, ReadResponse).
type plainTransport struct {
	timeout time.Duration // one round trip, the answer's body included
	maxIdle int           // idle connections kept per address
	dialer  net.Dialer

	mu   sync.Mutex
	idle map[string][]*plainConn // by host:port
}

func newPlainTransport(timeout time.Duration, maxIdle int) *plainTransport {
	dialTimeout := 30 * time.Second // net/http's default
	if timeout > 0 {
		dialTimeout = min(dialTimeout, timeout) // the round trip's bound covers its dial
	}
	return &plainTransport{timeout: timeout, maxIdle: max(maxIdle, 1),
		dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		idle:   map[string][]*plainConn{}}
}

// usesPlainTransport tells whether every URL can go through plainTransport: plain http and
// no proxy from the environment (which never applies to loopback addresses).
func usesPlainTransport(urls []string) bool {
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" {
			return false
		}
		proxy, err := http.ProxyFromEnvironment(&http.Request{URL: u})
		if err != nil || proxy != nil {
			return false
		}
	}
	return true
}

type plainConn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

// aLongTimeAgo is a deadline that has passed: it wakes any read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

func (t *plainTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		closeRequestBody(req)
		return nil, errors.New("publisher: the plain transport serves http:// only")
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	resp, reused, err := t.roundTrip(req, addr)
	if err != nil && reused && req.Context().Err() == nil && closedByServer(err) && req.GetBody != nil {
		// The server closed the kept-alive connection while it was idle, as its idle
		// timeout allows; it never read this request. One new connection, as net/http
		// tries too. (A repeat that did arrive is a duplicate the aggregator counts.)
		body, bodyErr := req.GetBody()
		if bodyErr != nil {
			return nil, err
		}
		retry := *req
		retry.Body = body
		resp, _, err = t.roundTrip(&retry, addr)
	}
	return resp, err
}

func (t *plainTransport) roundTrip(req *http.Request, addr string) (*http.Response, bool, error) {
	ctx := req.Context()
	pc, reused := t.take(addr)
	if pc == nil {
		conn, err := t.dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			closeRequestBody(req)
			return nil, false, err
		}
		pc = &plainConn{conn: conn, br: bufio.NewReaderSize(conn, 4<<10), bw: bufio.NewWriterSize(conn, 4<<10)}
	}
	if t.timeout > 0 {
		_ = pc.conn.SetDeadline(time.Now().Add(t.timeout))
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		pc.conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, reused, err
	}
	if err := req.Write(pc.bw); err != nil { // Write closes the request's body
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		return fail(err)
	}
	resp.Body = &plainBody{body: resp.Body, transport: t, pc: pc, addr: addr, stop: stop,
		keep: !resp.Close && !req.Close}
	return resp, reused, nil
}

// closedByServer tells the errors of a kept-alive connection the server had closed.
func closedByServer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (t *plainTransport) take(addr string) (*plainConn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conns := t.idle[addr]
	if len(conns) == 0 {
		return nil, false
	}
	pc := conns[len(conns)-1]
	t.idle[addr] = conns[:len(conns)-1]
	return pc, true
}

// keep puts a connection whose answer was read to its end back for the next request.
func (t *plainTransport) keep(addr string, pc *plainConn) {
	// No deadline while idle: the server's idle timeout ends the connection, and the next
	// request sets its own.
	if pc.conn.SetDeadline(time.Time{}) != nil {
		pc.conn.Close()
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle[addr]) >= t.maxIdle {
		pc.conn.Close()
		return
	}
	t.idle[addr] = append(t.idle[addr], pc)
}

// CloseIdleConnections closes the kept-alive connections; http.Client.CloseIdleConnections
// calls it.
func (t *plainTransport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, conns := range t.idle {
		for _, pc := range conns {
			pc.conn.Close()
		}
		delete(t.idle, addr)
	}
}

// plainBody is an answer's body. Read to its end, it gives the connection back for the
// next request; closed before that, it closes the connection, whose unread rest would
// otherwise be taken for the next answer.
type plainBody struct {
	body      io.ReadCloser
	transport *plainTransport
	pc        *plainConn
	addr      string
	stop      func() bool // stops the context's watch; false once it has fired
	keep      bool
	done      bool
}

func (b *plainBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		b.finish(b.keep)
	case err != nil:
		b.finish(false)
	}
	return n, err
}

func (b *plainBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *plainBody) finish(reuse bool) {
	b.done = true
	if b.stop() && reuse {
		b.body.Close() // read to its end: closing it reads nothing more
		b.transport.keep(b.addr, b.pc)
		return
	}
	// The connection goes first: the body's Close would otherwise read its rest.
	b.pc.conn.Close()
	b.body.Close()
}
