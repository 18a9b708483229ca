package main

import (
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/pprof"
)

// checkPprofAddr accepts only a loopback address: the profiles show the code, the heap and
// every goroutine's stack, and the endpoint has no token, so it must not face the network.
func checkPprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-pprof must be HOST:PORT, got %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-pprof must listen on a loopback address (127.0.0.1:PORT), got %q", addr)
	}
	return nil
}

// servePprof serves net/http/pprof on its own listener, apart from the API, so that
// profiling the aggregator under load (docs/benchmarks.md) needs no change to the route
// table and never shows on the API's address. It returns a function that stops it.
func servePprof(addr string, logger *slog.Logger) (stop func(), err error) {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on -pprof %s: %w", addr, err)
	}
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	server := &nethttp.Server{Handler: mux}
	go func() { _ = server.Serve(listener) }()
	logger.Info("serving pprof", "listening", listener.Addr().String())
	return func() { _ = server.Close() }, nil
}
