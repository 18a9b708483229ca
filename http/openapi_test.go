package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// apiDoc is the embedded OpenAPI document, read with encoding/json only, enough to check
// that what the server answers is what the document promises.
type apiDoc struct {
	root  map[string]any
	paths map[string]any
}

func loadDoc(t testing.TB) *apiDoc {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(openAPIDocument, &root); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	paths, _ := root["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatal("openapi.json has no paths")
	}
	return &apiDoc{root: root, paths: paths}
}

// resolve follows a local $ref ("#/components/...").
func (d *apiDoc) resolve(node map[string]any) map[string]any {
	for range 10 {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		var cur any = d.root
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			panic("openapi.json: dangling $ref " + ref)
		}
		node = next
	}
	panic("openapi.json: $ref loop")
}

// operation finds the documented operation for a request path, matching {param} segments.
func (d *apiDoc) operation(method, path string) (template string, op map[string]any) {
	if item, ok := d.paths[path].(map[string]any); ok {
		op, _ = item[strings.ToLower(method)].(map[string]any)
		return path, op
	}
	for tmpl, item := range d.paths {
		if matchTemplate(tmpl, path) {
			op, _ = item.(map[string]any)[strings.ToLower(method)].(map[string]any)
			return tmpl, op
		}
	}
	return "", nil
}

func matchTemplate(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		isParam := strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}")
		if ts[i] != ps[i] && !(isParam && ps[i] != "") {
			return false
		}
	}
	return true
}

// checkResponse reports how a response departs from the document: an undocumented status or
// media type, or a JSON body without a required property or with an undocumented one.
func (d *apiDoc) checkResponse(method, path string, status int, contentType string, body []byte) error {
	_, op := d.operation(method, path)
	if op == nil {
		// Not an operation: only the mux's JSON 404 and 405 are answered here.
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s is not documented but answered %d", method, path, status)
		}
		errSchema := d.resolve(map[string]any{"$ref": "#/components/schemas/Error"})
		return d.checkBody(errSchema, "application/json", contentType, body)
	}
	responses, _ := op["responses"].(map[string]any)
	resp, ok := responses[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s answered %d, which the document does not list", method, path, status)
	}
	resp = d.resolve(resp)
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("%s %s %d: body sent but no content documented", method, path, status)
		}
		return nil
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%s %s %d: Content-Type %q: %v", method, path, status, contentType, err)
	}
	media, ok := content[mediaType].(map[string]any)
	if !ok {
		media, ok = content["*/*"].(map[string]any)
	}
	if !ok {
		return fmt.Errorf("%s %s %d: Content-Type %s is not documented", method, path, status, mediaType)
	}
	schema, _ := media["schema"].(map[string]any)
	if err := d.checkBody(d.resolve(schema), mediaType, contentType, body); err != nil {
		return fmt.Errorf("%s %s %d: %w", method, path, status, err)
	}
	return nil
}

func (d *apiDoc) checkBody(schema map[string]any, mediaType, contentType string, body []byte) error {
	switch mediaType {
	case "application/json":
		if got, _, _ := mime.ParseMediaType(contentType); got != "application/json" {
			return fmt.Errorf("Content-Type %q, want application/json", contentType)
		}
		v, err := decodeJSON(body)
		if err != nil {
			return err
		}
		return d.validate(schema, v, "body")
	case ndjson:
		for i, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
			if len(line) == 0 && i == 0 {
				break // an empty export
			}
			v, err := decodeJSON(line)
			if err != nil {
				return fmt.Errorf("line %d: %w", i+1, err)
			}
			if err := d.validate(schema, v, fmt.Sprintf("line %d", i+1)); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("body is not JSON: %v: %q", err, b)
	}
	return v, nil
}

// validate checks v against the subset of JSON Schema the document uses.
func (d *apiDoc) validate(schema map[string]any, v any, at string) error {
	schema = d.resolve(schema)
	if alts, ok := schema["oneOf"].([]any); ok {
		for _, alt := range alts {
			if d.validate(alt.(map[string]any), v, at) == nil {
				return nil
			}
		}
		return fmt.Errorf("%s matches none of oneOf", at)
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		return fmt.Errorf("%s = %v is not one of %v", at, v, enum)
	}
	switch schema["type"] {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s is %T, want an object", at, v)
		}
		required, _ := schema["required"].([]any)
		for _, r := range required {
			if _, ok := obj[r.(string)]; !ok {
				return fmt.Errorf("%s lacks required property %q", at, r)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for key, val := range obj {
			if p, ok := props[key].(map[string]any); ok {
				if err := d.validate(p, val, at+"."+key); err != nil {
					return err
				}
				continue
			}
			switch extra := schema["additionalProperties"].(type) {
			case bool:
				if !extra {
					return fmt.Errorf("%s has undocumented property %q", at, key)
				}
			case map[string]any:
				if err := d.validate(extra, val, at+"."+key); err != nil {
					return err
				}
			default:
				// Responses document every property they send, so an unknown one is drift.
				return fmt.Errorf("%s has undocumented property %q", at, key)
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s is %T, want an array", at, v)
		}
		items, _ := schema["items"].(map[string]any)
		for i, el := range arr {
			if err := d.validate(items, el, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s is %T, want a string", at, v)
		}
	case "integer":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return fmt.Errorf("%s = %v, want an integer", at, v)
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%s = %v, want a number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s = %v, want a boolean", at, v)
		}
	}
	return nil
}

// docCheckingTransport checks every response a test receives against the document, so that
// every test is also a test of the document.
type docCheckingTransport struct {
	t    testing.TB
	doc  *apiDoc
	base http.RoundTripper
}

func (c *docCheckingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := c.doc.checkResponse(req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), body); err != nil {
		c.t.Errorf("response disagrees with openapi.json: %v", err)
	}
	return resp, nil
}

// TestDocumentMatchesRoutes fails when a route is served but not documented, or documented
// but not served.
func TestDocumentMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{publishTokens: []string{"p"}, readTokens: []string{"r"}})
	doc := loadDoc(t)

	for _, rt := range routes(withDefaults(e.cfg)) {
		if _, op := doc.operation(rt.method, rt.path); op == nil {
			t.Errorf("route %s %s is not in openapi.json", rt.method, rt.path)
		}
	}

	handler := NewHandler(e.cfg)
	for tmpl, item := range doc.paths {
		for method, op := range item.(map[string]any) {
			path := tmpl
			params, _ := op.(map[string]any)["parameters"].([]any)
			for _, p := range params {
				p := p.(map[string]any)
				if p["in"] == "path" {
					path = strings.ReplaceAll(path, "{"+p["name"].(string)+"}", fmt.Sprint(p["example"]))
				}
			}
			req := httptest.NewRequest(strings.ToUpper(method), path, nil)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
				t.Errorf("openapi.json documents %s %s but the handler answers %d", strings.ToUpper(method), tmpl, rec.Code)
			}
		}
	}
}

// TestDocumentIsSound checks the document itself: every operation lists its errors and
// every protected one names its security scheme.
func TestDocumentIsSound(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	if v, _ := doc.root["openapi"].(string); !strings.HasPrefix(v, "3.0") {
		t.Errorf("openapi version %q, want 3.0.x", v)
	}
	want := map[string][]string{
		"POST /publish":                     {"200", "202", "400", "401", "413", "415", "422", "500", "503"},
		"GET /events":                       {"200", "401", "422", "500", "503"},
		"GET /stats":                        {"200", "401", "500", "503"},
		"GET /metrics":                      {"200", "401"},
		"GET /readyz":                       {"200", "503"},
		"GET /health":                       {"200", "503"},
		"GET /healthz":                      {"200"},
		"PUT /subscriptions/{name}":         {"200", "201", "400", "401", "409", "422", "500", "503"},
		"GET /subscriptions/{name}":         {"200", "401", "404", "422", "500", "503"},
		"DELETE /subscriptions/{name}":      {"204", "401", "404", "422", "500", "503"},
		"GET /subscriptions/{name}/events":  {"200", "401", "404", "422", "500", "503"},
		"POST /subscriptions/{name}/commit": {"200", "400", "401", "404", "409", "422", "500", "503"},
		"GET /subscriptions":                {"200", "401", "500", "503"},
	}
	for key, statuses := range want {
		method, path, _ := strings.Cut(key, " ")
		_, op := doc.operation(method, path)
		if op == nil {
			t.Errorf("%s is not documented", key)
			continue
		}
		responses := op["responses"].(map[string]any)
		for _, s := range statuses {
			if _, ok := responses[s]; !ok {
				t.Errorf("%s does not document %s", key, s)
			}
		}
		if slices.Contains(statuses, "401") {
			sec, _ := op["security"].([]any)
			if len(sec) == 0 {
				t.Errorf("%s answers 401 but names no security scheme", key)
			}
		}
	}
	// Every $ref resolves.
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if _, ok := n["$ref"]; ok {
				doc.resolve(n)
			}
			for _, v := range n {
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	walk(doc.root)
}
