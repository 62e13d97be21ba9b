package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/store"
)

// Limits of what one client address can make the server do without a
// valid key, per window (a minute from its first refusal).
const (
	// maxKeyFailures is how many failed key checks an address gets before
	// its requests are answered 429 without a check (no bcrypt, no store
	// read) until the window ends.
	maxKeyFailures = 10
	// maxAnonEvents is how many refused unauthenticated requests of an
	// address are audited one by one; the rest are counted, and the count
	// is audited as one event when the window ends.
	maxAnonEvents = 10
	refusalWindow = time.Minute
	// maxAddresses bounds the addresses tracked at once; past it, new
	// addresses share one window, so a spread-out flood is limited too.
	maxAddresses = 10000
	sharedWindow = "other addresses"
)

// refusals tracks, per client address, the failed key checks and the
// refused unauthenticated requests of the current window. It is what keeps
// noise from growing the audit trail without bound, and guessing keys from
// costing a bcrypt check each.
type refusals struct {
	mu      sync.Mutex
	now     func() time.Time
	windows map[string]*addrWindow
	// swept is when ended windows were last looked for.
	swept time.Time
}

// addrWindow is one address's current window.
type addrWindow struct {
	start    time.Time
	failures int
	events   int
	// counted refusals, not audited one by one, between first and last.
	counted     int
	first, last time.Time
}

// countedRefusals is the audit summary of an address's counted refusals.
type countedRefusals struct {
	addr        string
	n           int
	first, last time.Time
}

func newRefusals() *refusals {
	return &refusals{now: time.Now, windows: make(map[string]*addrWindow)}
}

// window returns addr's current window, starting a new one when there is
// none or it ended (the ended one's count goes to due). Call with mu held.
func (rf *refusals) window(addr string, now time.Time, due *[]countedRefusals) *addrWindow {
	w, ok := rf.windows[addr]
	if ok && now.Sub(w.start) < refusalWindow {
		return w
	}
	if ok {
		*due = appendCounted(*due, addr, w)
	} else if addr != sharedWindow && len(rf.windows) >= maxAddresses {
		rf.sweep(now, false, due)
		if len(rf.windows) >= maxAddresses {
			return rf.window(sharedWindow, now, due)
		}
	}
	w = &addrWindow{start: now}
	rf.windows[addr] = w
	return w
}

// sweep moves the counts of ended windows (of all windows, with all) to
// due and forgets ended windows. Call with mu held.
func (rf *refusals) sweep(now time.Time, all bool, due *[]countedRefusals) {
	rf.swept = now
	for addr, w := range rf.windows {
		ended := now.Sub(w.start) >= refusalWindow
		if ended || all {
			*due = appendCounted(*due, addr, w)
			w.counted = 0
		}
		if ended {
			delete(rf.windows, addr)
		}
	}
}

func appendCounted(due []countedRefusals, addr string, w *addrWindow) []countedRefusals {
	if w.counted == 0 {
		return due
	}
	return append(due, countedRefusals{addr: addr, n: w.counted, first: w.first, last: w.last})
}

// due returns the counts of windows that ended, looking at most once a
// window.
func (rf *refusals) due() []countedRefusals {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	var due []countedRefusals
	if now := rf.now(); now.Sub(rf.swept) >= refusalWindow {
		rf.sweep(now, false, &due)
	}
	return due
}

// limited reports whether addr used up its failed key checks, and for how
// much longer.
func (rf *refusals) limited(addr string) (time.Duration, bool, []countedRefusals) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	var due []countedRefusals
	now := rf.now()
	w := rf.window(addr, now, &due)
	return w.start.Add(refusalWindow).Sub(now), w.failures >= maxKeyFailures, due
}

// failed records a failed key check of addr.
func (rf *refusals) failed(addr string) []countedRefusals {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	var due []countedRefusals
	rf.window(addr, rf.now(), &due).failures++
	return due
}

// record reports whether a refused unauthenticated request of addr is
// audited one by one; if not, it is counted.
func (rf *refusals) record(addr string) (bool, []countedRefusals) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	var due []countedRefusals
	now := rf.now()
	w := rf.window(addr, now, &due)
	if w.events < maxAnonEvents {
		w.events++
		return true, due
	}
	if w.counted == 0 {
		w.first = now
	}
	w.counted++
	w.last = now
	return false, due
}

// FlushRequestAudit audits the counts of refused unauthenticated requests
// not audited yet, also of windows still running. serve calls it when it
// stops, after the HTTP server shut down; it returns the first audit
// write that failed.
func (s *Server) FlushRequestAudit(ctx context.Context) error {
	s.refusals.mu.Lock()
	var due []countedRefusals
	s.refusals.sweep(s.refusals.now(), true, &due)
	s.refusals.mu.Unlock()
	return s.auditCounted(ctx, due)
}

// auditCounted audits each count as one event, oldest first.
func (s *Server) auditCounted(ctx context.Context, due []countedRefusals) error {
	sort.Slice(due, func(i, j int) bool { return due[i].first.Before(due[j].first) })
	var first error
	for _, c := range due {
		ev := &store.AuditEvent{
			At: c.first.UTC(), ActorType: "unknown", Source: store.SourceAI, Action: "mcp.request",
			Decision: store.DecisionDenied, RequestID: newRequestID(),
			Reason: fmt.Sprintf("unauthenticated requests from %s between %s and %s were refused and counted, not audited one by one (more than %d in a minute)",
				c.addr, c.first.UTC().Format(time.RFC3339), c.last.UTC().Format(time.RFC3339), maxAnonEvents),
			Result: fmt.Sprintf("%d refused requests", c.n),
		}
		if err := s.gate.audit(ctx, ev, c.first); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// clientAddress is the address a request came from: the connection's IP,
// never a header the client could set.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticateHTTP authenticates the bearer key of an MCP request. When it
// returns false it has answered the request (401, or 429 for an address
// past its failed key checks, which gets no check at all) and audited the
// refusal as refuseAnonymous does.
func (s *Server) authenticateHTTP(w http.ResponseWriter, r *http.Request, body []byte) (store.Principal, bool) {
	addr := clientAddress(r)
	ctx := r.Context()
	key := bearer(r)
	wait, limited, due := s.refusals.limited(addr)
	s.auditDue(ctx, append(due, s.refusals.due()...))
	// A key verified moments ago costs no bcrypt: the agent using it keeps
	// working while someone else on its address guesses keys.
	if limited && !s.auth.verifiedRecently(key) {
		ev := s.gate.event(ctx, toolOf(body), nil, time.Now())
		ev.ActorType, ev.Action, ev.KeyPrefix = "unknown", "authenticate", KeyPrefix(key)
		ev.Reason = fmt.Sprintf("more than %d failed key checks from this address in a minute: refused without a check", maxKeyFailures)
		secs := max(int((wait+time.Second-1)/time.Second), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.refuseAnonymous(w, r, ev, http.StatusTooManyRequests, -32600,
			fmt.Sprintf("Too many failed key checks from this address: try again in %d seconds with a valid API key", secs))
		return store.Principal{}, false
	}
	p, err := s.auth.Authenticate(ctx, key)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			s.auditDue(ctx, s.refusals.failed(addr))
		}
		ev := s.gate.event(ctx, toolOf(body), nil, time.Now())
		s.gate.noteAuthFailure(ev, err)
		w.Header().Set("WWW-Authenticate", `Bearer realm="signalsmith", error="invalid_token"`)
		s.refuseAnonymous(w, r, ev, http.StatusUnauthorized, -32600, "Authentication failed: "+ErrUnauthenticated.Error())
		return store.Principal{}, false
	}
	return p, true
}

// auditDue audits counts that came due; a failure is logged, and the
// request goes on (its own refusal is audited separately).
func (s *Server) auditDue(ctx context.Context, due []countedRefusals) {
	if len(due) == 0 {
		return
	}
	if err := s.auditCounted(context.WithoutCancel(ctx), due); err != nil {
		s.log.Error("audit counted refusals", "err", err)
	}
}

// refuseAnonymous answers a request refused before its caller was known,
// and audits it, one by one for the first few of its address in a minute
// and counted after that (see refusals).
func (s *Server) refuseAnonymous(w http.ResponseWriter, r *http.Request, ev *store.AuditEvent, status, code int, msg string) {
	one, due := s.refusals.record(clientAddress(r))
	s.auditDue(r.Context(), due)
	if one {
		ev.Decision = store.DecisionDenied
		_ = s.gate.audit(r.Context(), ev, ev.At)
	}
	writeRPCError(w, status, code, nil, msg)
}

// verifiedRecently reports whether key is a key this authenticator
// verified (bcrypt) within its cache time, without checking anything.
func (a *Authenticator) verifiedRecently(key string) bool {
	if _, _, ok := splitKey(key); !ok {
		return false
	}
	_, ok := a.lookup(sha256Sum(key), a.now())
	return ok
}

// servedMethods are the MCP requests this server answers, each with the
// mcp-go request type its message must decode into; mcp-go refuses every
// other method (no resources, prompts, completions, logging or tasks
// here), and a message of these that does not decode.
var servedMethods = map[string]func() any{
	string(mcp.MethodInitialize):          func() any { return &mcp.InitializeRequest{} },
	string(mcp.MethodPing):                func() any { return &mcp.PingRequest{} },
	string(mcp.MethodServerDiscover):      func() any { return &mcp.DiscoverRequest{} },
	string(mcp.MethodSubscriptionsListen): func() any { return &mcp.SubscriptionsListenRequest{} },
	string(mcp.MethodToolsList):           func() any { return &mcp.ListToolsRequest{} },
	string(mcp.MethodToolsCall):           func() any { return &mcp.CallToolRequest{} },
}

// rpcProblem is what is wrong with an authenticated MCP request: the audit
// reason, and, when this layer answers it, the HTTP status, JSON-RPC code
// and message. A problem with status 0 is left to mcp-go to answer (it
// refuses it in its own words), after it is audited.
type rpcProblem struct {
	reason string
	status int
	code   int
	msg    string
}

// checkRPC audits an authenticated MCP request that mcp-go would refuse
// before any tool middleware, which therefore would leave no event: one
// event per request. Malformed JSON-RPC it answers itself; an unknown
// method it leaves to mcp-go. It returns false when it answered.
func (s *Server) checkRPC(w http.ResponseWriter, r *http.Request, p store.Principal, body []byte) bool {
	prob, id := inspectRPC(r, body)
	if prob == nil {
		return true
	}
	ev := s.gate.event(r.Context(), "", nil, time.Now())
	setActor(ev, p)
	ev.Action, ev.Reason, ev.Decision = "mcp.request", prob.reason, store.DecisionDenied
	if err := s.gate.audit(r.Context(), ev, ev.At); err != nil {
		// Not recorded: answer nothing else (fail closed).
		writeRPCError(w, http.StatusInternalServerError, -32603, id, internalMessage(ev.RequestID))
		return false
	}
	if prob.status == 0 {
		return true
	}
	writeRPCError(w, prob.status, prob.code, id, prob.msg)
	return false
}

// inspectRPC finds what is wrong with an MCP request, nil when nothing is,
// and its JSON-RPC id when it has a usable one.
func inspectRPC(r *http.Request, body []byte) (*rpcProblem, any) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodDelete:
		return nil, nil
	default:
		return &rpcProblem{reason: "HTTP method " + r.Method + " is not served on /mcp"}, nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &rpcProblem{reason: "the request's content type is not application/json"}, nil
	}
	bad := func(reason string, code int, msg string) *rpcProblem {
		return &rpcProblem{reason: "malformed JSON-RPC request: " + reason, status: http.StatusBadRequest, code: code, msg: msg}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return bad("a batch", -32600, "Invalid request: JSON-RPC batches are not supported; send one request per HTTP POST"), nil
	}
	var msg map[string]json.RawMessage
	if json.Unmarshal(trimmed, &msg) != nil {
		return bad("not a JSON object", -32600, "Invalid request: the body must be one JSON-RPC object"), nil
	}
	var id any
	if raw, ok := msg["id"]; ok && string(raw) != "null" {
		var num json.Number
		var str string
		switch {
		case json.Unmarshal(raw, &str) == nil:
			id = str
		case json.Unmarshal(raw, &num) == nil:
			id = num
		default:
			return bad("the id is not a string or a number", -32600, `Invalid request: "id" must be a string or a number`), nil
		}
	}
	var version string
	if json.Unmarshal(msg["jsonrpc"], &version) != nil || version != mcp.JSONRPC_VERSION {
		return bad("wrong or missing jsonrpc version", -32600, `Invalid request: "jsonrpc" must be "2.0"`), id
	}
	rawMethod, hasMethod := msg["method"]
	if !hasMethod {
		if id != nil && (msg["result"] != nil || msg["error"] != nil) {
			return nil, nil // a response to a request of the server
		}
		return bad("no method", -32600, `Invalid request: "method" is required`), id
	}
	var method string
	if json.Unmarshal(rawMethod, &method) != nil {
		return bad("the method is not a string", -32600, `Invalid request: "method" must be a string`), id
	}
	var params map[string]json.RawMessage
	if raw, ok := msg["params"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &params) != nil {
			return bad("params is not an object", -32602, `Invalid params: "params" must be an object`), id
		}
	}
	if method == string(mcp.MethodToolsCall) {
		var name string
		if raw, ok := params["name"]; ok && json.Unmarshal(raw, &name) != nil {
			return bad("the tool name is not a string", -32602, `Invalid params: "name" must be the tool's name as a string`), id
		}
	}
	if id == nil {
		// A notification: mcp-go ignores those it does not know.
		return nil, nil
	}
	request, served := servedMethods[method]
	if !served {
		return &rpcProblem{reason: fmt.Sprintf("unknown or unsupported method %q", method)}, id
	}
	if json.Unmarshal(trimmed, request()) != nil {
		return bad("its params do not match "+method, -32602, "Invalid params: the params do not match the "+method+" request"), id
	}
	return nil, nil
}

// writeRPCError answers with a JSON-RPC error object.
func writeRPCError(w http.ResponseWriter, status, code int, id any, msg string) {
	writeJSON(w, status, map[string]any{
		"jsonrpc": "2.0",
		"id":      id,
		"error":   map[string]any{"code": code, "message": msg},
	})
}

// sha256Sum is the digest the authenticator's cache is keyed by.
func sha256Sum(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }
