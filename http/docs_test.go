package http

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDocsServedFromBinary(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	spec := e.do("GET", "/openapi.json", nil)
	mustStatus(t, spec, http.StatusOK)
	if !bytes.Equal(spec.body, openAPIDocument) {
		t.Error("/openapi.json is not the embedded document")
	}
	for _, path := range []string{"/docs", "/docs/"} {
		page := e.do("GET", path, nil)
		mustStatus(t, page, http.StatusOK)
		html := string(page.body)
		if !strings.Contains(html, "/openapi.json") || !strings.Contains(html, "swagger-ui-bundle.js") {
			t.Errorf("%s does not load the document with Swagger UI:\n%.500s", path, html)
		}
		if strings.Contains(html, "://") && strings.Contains(html, "cdn") {
			t.Errorf("%s loads from a CDN", path)
		}
	}
	for _, asset := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"} {
		resp := e.do("GET", "/docs/"+asset, nil)
		mustStatus(t, resp, http.StatusOK)
		if len(resp.body) < 1000 {
			t.Errorf("/docs/%s is %d bytes", asset, len(resp.body))
		}
	}
}

func TestPanicBecomesJSON500(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	handler := recoverPanics(logger, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/stats", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("panic answered %d %s, want a JSON 500", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}
	doc := loadDoc(t)
	if err := doc.checkResponse("GET", "/stats", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()); err != nil {
		t.Error(err)
	}
}
