package server

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// rebindingHost reports whether r reached a loopback listener under a Host
// that is not a loopback name: a page on another site whose name was
// rebound to 127.0.0.1. Such a request never reaches a handler.
func rebindingHost(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && IsLoopback(local.String()) && !IsLoopback(r.Host)
}

// originGuard protects the HTTP surfaces besides /mcp (the approval web
// queue, its JSON API, health and metrics) as /mcp is: a rebinding Host is
// refused (403) on every request, and a state-changing request (POST, ...)
// a browser says came from another origin is refused by the standard
// library's cross-origin protection (Sec-Fetch-Site, else Origin against
// the Host), with the server's own base URL and its allowed origins
// trusted. "Origin: null", which browsers send with forms under
// Referrer-Policy no-referrer, says nothing about the origin and is left to
// the web queue's SameSite=Strict cookie and CSRF token.
type originGuard struct {
	cop *http.CrossOriginProtection
}

// newOriginGuard trusts the origins of the given URLs (their scheme and
// host; a public URL may have a path) besides the request's own. It returns
// an error for a URL without a scheme or host.
func newOriginGuard(trusted ...string) (*originGuard, error) {
	cop := http.NewCrossOriginProtection()
	for _, raw := range trusted {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("trusted origin %q: not an absolute URL", raw)
		}
		if err := cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("trusted origin %q: %w", raw, err)
		}
	}
	return &originGuard{cop: cop}, nil
}

// wrap returns next behind the guard.
func (g *originGuard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reason := ""
		if rebindingHost(r) {
			reason = "invalid Host header"
		} else if err := g.cop.Check(withoutNullOrigin(r)); err != nil {
			reason = "cross-origin request refused"
		}
		if reason == "" {
			next.ServeHTTP(w, r)
			return
		}
		msg := "Forbidden: " + reason + ". Open this server under its own loopback address (http://127.0.0.1:PORT)."
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]string{"code": "forbidden", "message": msg}})
			return
		}
		http.Error(w, msg, http.StatusForbidden)
	})
}

// withoutNullOrigin returns r, or for "Origin: null" a shallow copy without
// the Origin header, for CrossOriginProtection, which would read "null" as
// a foreign origin.
func withoutNullOrigin(r *http.Request) *http.Request {
	if r.Header.Get("Origin") != "null" {
		return r
	}
	c := r.Clone(r.Context())
	c.Header.Del("Origin")
	return c
}
