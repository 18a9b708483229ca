package http

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		publishTokens: []string{"pub-1", "pub-two-longer"},
		readTokens:    []string{"read-1"},
	})
	body := mustJSON(t, event("auth", 0))
	for _, c := range []struct {
		method, path string
		right        []string // tokens that open it
		wrong        []string // tokens that do not: other roles' and near misses
	}{
		{"POST", "/publish", []string{"pub-1", "pub-two-longer"}, []string{"read-1", "pub-", "pub-1x", "PUB-1"}},
		{"GET", "/events", []string{"read-1"}, []string{"pub-1", "read-", "read-11"}},
		{"GET", "/stats", []string{"read-1"}, []string{"pub-1"}},
		{"GET", "/metrics", []string{"read-1"}, []string{"pub-two-longer"}},
	} {
		var reqBody []byte
		if c.method == "POST" {
			reqBody = body
		}
		resp := e.do(c.method, c.path, reqBody)
		mustStatus(t, resp, http.StatusUnauthorized)
		if got := resp.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("%s %s without a token: WWW-Authenticate %q", c.method, c.path, got)
		}
		for _, h := range []string{"Basic cHViLTE6", "Bearer", "Bearer ", "pub-1"} {
			mustStatus(t, e.do(c.method, c.path, reqBody, "Authorization", h), http.StatusUnauthorized)
		}
		for _, tok := range c.wrong {
			resp := e.do(c.method, c.path, reqBody, "Authorization", "Bearer "+tok)
			if resp.status != http.StatusUnauthorized {
				t.Errorf("%s %s with wrong token %q: %d", c.method, c.path, tok, resp.status)
			}
			if got := resp.header.Get("WWW-Authenticate"); !strings.Contains(got, "invalid_token") {
				t.Errorf("%s %s with wrong token: WWW-Authenticate %q", c.method, c.path, got)
			}
		}
		for _, tok := range c.right {
			for _, scheme := range []string{"Bearer ", "bearer "} {
				if resp := e.do(c.method, c.path, reqBody, "Authorization", scheme+tok); resp.status != http.StatusOK {
					t.Errorf("%s %s with %s%q: %d %s", c.method, c.path, scheme, tok, resp.status, resp.body)
				}
			}
		}
	}
	// Health, readiness and the docs stay open.
	for _, path := range []string{"/healthz", "/readyz", "/health", "/openapi.json", "/docs", "/docs/"} {
		mustStatus(t, e.do("GET", path, nil), http.StatusOK)
	}
}

func TestAccessLogOmitsTokens(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := newEnv(t, envOptions{publishTokens: []string{"secret-publish-token"}})
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := e.cfg
	cfg.Logger = logger
	handler := NewHandler(cfg)
	for _, tok := range []string{"secret-publish-token", "wrong-secret-token"} {
		req := httptest.NewRequest("POST", "/publish", bytes.NewReader(mustJSON(t, event("log", 0))))
		req.Header.Set("Authorization", "Bearer "+tok)
		handler.ServeHTTP(httptest.NewRecorder(), req)
	}
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("the log holds a token:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "status=401") || !strings.Contains(logs.String(), "path=/publish") {
		t.Errorf("the access log lacks the request:\n%s", logs.String())
	}
}
