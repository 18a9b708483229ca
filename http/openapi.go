package http

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes the API; a test keeps it and the routes in agreement.
//
//go:embed openapi.json
var openAPIDocument []byte

func handleOpenAPI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	}
}
