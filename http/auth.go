package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/uts-events/uts"
)

// requireBearer admits requests that carry one of tokens as a bearer token; with no tokens
// it admits everything. Tokens are compared as SHA-256 digests, so every comparison is over
// equal lengths and takes the same time whatever the token's length, and every token is
// compared, so timing does not tell which one matched.
func requireBearer(tokens []string) func(http.Handler) http.Handler {
	if len(tokens) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	digests := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		digests[i] = sha256.Sum256([]byte(t))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			given, ok := bearerToken(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="uts"`)
				writeStatusError(w, statusOf(uts.KindUnauthorized), "a bearer token is required")
				return
			}
			sum := sha256.Sum256([]byte(given))
			match := 0
			for i := range digests {
				match |= subtle.ConstantTimeCompare(sum[:], digests[i][:])
			}
			if match != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="uts", error="invalid_token"`)
				writeStatusError(w, statusOf(uts.KindUnauthorized), "the bearer token is not valid")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
