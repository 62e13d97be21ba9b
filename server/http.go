package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/signalsmith/agent-server/store"
)

// DefaultMaxBody is the largest MCP request body the server reads.
const DefaultMaxBody = 1 << 20

// Handler returns the HTTP surface: /mcp (streamable HTTP, bearer key),
// the approval web queue /approvals and its API /api/v1/approvals, /healthz,
// /readyz and /metrics (Prometheus, unauthenticated: see metrics).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// The approval web queue (session cookie) and its JSON API (bearer key).
	for _, prefix := range []string{"/approvals", "/approvals/", "/api/v1/approvals", "/api/v1/approvals/"} {
		mux.Handle(prefix, s.approvalsWeb)
	}
	// PII classification of warehouse columns, for people (piiapi.go).
	mux.HandleFunc("/api/v1/pii", s.servePII)
	mux.HandleFunc("/api/v1/destination-filters", s.serveDestinationFilters)
	mux.HandleFunc("/api/v1/destination-filters/", s.serveDestinationFilters)
	mux.HandleFunc("/api/v1/destinations", s.serveDestinations)
	mux.HandleFunc("/api/v1/destinations/", s.serveDestinations)
	// Prometheus metrics: counts, durations and tool names only, no secret
	// or personal data, so no authentication; the listener is loopback
	// unless the operator chose otherwise.
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gate.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ready(r); err != nil {
			s.log.Error("readiness check failed", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	// /mcp checks Host and Origin itself (and audits refusals); every other
	// surface is behind the origin guard (origin.go).
	root := http.NewServeMux()
	root.Handle("/mcp", s.protectMCP(s.bindSession(s.mcpHTTP)))
	root.Handle("/", s.origins.wrap(mux))
	return root
}

// ready checks that the store and the warehouse answer.
func (s *Server) ready(r *http.Request) error {
	if _, err := s.store.RBACVersion(r.Context()); err != nil {
		return err
	}
	_, err := s.warehouse.Tables(r.Context())
	return err
}

// protectMCP guards the MCP endpoint: DNS-rebinding and Origin checks, a
// body size limit, and bearer-key authentication. A request that fails
// authentication gets 401 and reaches no MCP handler; the failure is audited.
func (s *Server) protectMCP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reason := rebinding(r, s.allowedOrigins); reason != "" {
			s.log.Warn("mcp request refused", "reason", reason, "remote", r.RemoteAddr)
			ev := s.gate.event(r.Context(), "", nil, time.Now())
			ev.ActorType, ev.Action, ev.KeyPrefix, ev.Reason = "unknown", "mcp.request", KeyPrefix(bearer(r)), reason
			s.refuseAnonymous(w, r, ev, http.StatusForbidden, -32600, "Forbidden: "+reason)
			return
		}
		var body []byte
		if r.Body != nil {
			var err error
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				ev := s.gate.event(r.Context(), "", nil, time.Now())
				ev.ActorType, ev.Action = "unknown", "mcp.request"
				ev.KeyPrefix, ev.Reason = KeyPrefix(bearer(r)), "request body too large"
				s.refuseAnonymous(w, r, ev, http.StatusRequestEntityTooLarge, -32600, "Request body exceeds the limit of "+strconv.FormatInt(s.maxBody, 10)+" bytes")
				return
			}
			if err != nil {
				http.Error(w, "Bad Request: could not read body", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		// One request is one call: authentication and the call share the
		// store's version read.
		r = r.WithContext(store.WithCallScope(r.Context()))
		p, ok := s.authenticateHTTP(w, r, body)
		if !ok {
			return
		}
		if len(body) > 0 && !json.Valid(body) {
			ev := s.gate.event(r.Context(), "", nil, time.Now())
			setActor(ev, p)
			ev.Action, ev.Reason = "mcp.request", "malformed JSON-RPC request"
			s.refuse(w, r, ev, http.StatusBadRequest, "Parse error: the body is not valid JSON")
			return
		}
		if !s.checkRPC(w, r, p, body) {
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// refuse audits and answers a request that MCP will not handle. ev is its
// audit event with the actor and reason filled in.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ev *store.AuditEvent, status int, msg string) {
	ev.Decision = store.DecisionDenied
	_ = s.gate.audit(r.Context(), ev, ev.At)
	writeJSONRPCError(w, status, msg)
}

// bearer returns the key of an "Authorization: Bearer" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(key)
}

// toolOf returns the tool name of a tools/call body, "" for anything else.
func toolOf(body []byte) string {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method != "tools/call" || len(msg.Params.Name) > 128 {
		return ""
	}
	return msg.Params.Name
}

// rebinding returns why a request fails the DNS-rebinding check, "" if it
// passes: on a loopback listener the Host must be a loopback name, and a
// browser Origin must be loopback or explicitly allowed.
func rebinding(r *http.Request, allowedOrigins []string) string {
	if rebindingHost(r) {
		return "invalid Host header"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	for _, o := range allowedOrigins {
		if strings.EqualFold(o, origin) {
			return ""
		}
	}
	u, err := url.Parse(origin)
	if err != nil || !IsLoopback(u.Host) {
		return "origin not allowed"
	}
	return ""
}

// IsLoopback reports whether a host or host:port names a loopback address
// ("localhost", 127.0.0.0/8, ::1). The DNS-rebinding check and serve's
// refusal of plain HTTP off loopback both use it.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONRPCError answers with a JSON-RPC error object, which MCP clients
// understand better than a bare status line.
func writeJSONRPCError(w http.ResponseWriter, status int, msg string) {
	code := -32600
	if status == http.StatusBadRequest {
		code = -32700
	}
	writeJSON(w, status, map[string]any{
		"jsonrpc": "2.0",
		"id":      nil,
		"error":   map[string]any{"code": code, "message": msg},
	})
}
