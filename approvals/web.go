package approvals

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// AuthenticateFunc returns the principal behind an API key. For a key that
// is missing, malformed, unknown, wrong, revoked or expired it returns an
// error wrapping ErrUnauthenticated (an *AuthFailure keeps the audit
// reason); any other error is internal.
type AuthenticateFunc func(ctx context.Context, key string) (store.Principal, error)

// PrincipalFunc reads the principal behind a key id afresh. It returns an
// error wrapping store.ErrNotFound when the key is unknown, revoked or
// expired.
type PrincipalFunc func(ctx context.Context, keyID string) (store.Principal, error)

// ExecuteFunc runs an approved approval's call at most once and returns the
// approval with its outcome (succeeded or failed). source is where the
// decision came from (UI, API). The server wires it to its gate.
type ExecuteFunc func(ctx context.Context, a store.Approval, source string) (store.Approval, error)

// Target is the object an approval's call acts on, as it is now: what the
// detail page diffs the arguments against.
type Target struct {
	// Type is the resource type (model, audience, destination, sync).
	Type string
	// Operation is the guardrail operation of the tool: read, create,
	// update, delete or trigger.
	Operation string
	// ID is the id or name the arguments give; "" when they name no object.
	ID string
	// Object is the object's current JSON; nil when it does not exist.
	Object []byte
}

// TargetFunc returns the target of an approval's call. An unknown tool is
// a zero Target, not an error.
type TargetFunc func(ctx context.Context, a store.Approval) (Target, error)

// MaxComment is the longest comment a decision may carry, in bytes.
const MaxComment = 2000

// maxForm caps a web form body.
const maxForm = 16 << 10

// Cookie names: the session, and the token that protects the sign-in form.
const (
	sessionCookie = "signalsmith_session"
	loginCookie   = "signalsmith_login"
)

// securityHeaders are set on every response of the web queue and the API.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Frame-Options":         "DENY",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "no-store",
}

//go:embed templates/*.html static/*
var assets embed.FS

// WebConfig is what NewWeb needs. Queue, Authenticate, Principal and
// Execute are required.
type WebConfig struct {
	Queue        *Queue
	Authenticate AuthenticateFunc
	Principal    PrincipalFunc
	Execute      ExecuteFunc
	// Target looks up the object an approval acts on, for the diff; the
	// detail page says there is nothing to diff when nil.
	Target TargetFunc
	// Tools are the tool names the tool filter accepts; any well-formed
	// name when empty.
	Tools []string
	// Link is an approval's absolute URL, for API answers; a path when nil.
	Link func(id string) string
	// Origins are origins, besides the request's own, that a browser may
	// POST from (the server's public URL behind a proxy).
	Origins []string
	// SessionTTL is how long a sign-in lasts (DefaultSessionTTL when zero).
	SessionTTL time.Duration
	// Logger receives operational logs; never keys or session ids.
	Logger *slog.Logger
}

// Web serves the approval web queue under /approvals (source UI) and the
// JSON API under /api/v1/approvals (source API). See doc.go for the
// session and CSRF design.
type Web struct {
	queue    *Queue
	auth     AuthenticateFunc
	reread   PrincipalFunc
	execute  ExecuteFunc
	target   TargetFunc
	tools    []string
	link     func(id string) string
	origins  []string
	cop      *http.CrossOriginProtection
	routes   *http.ServeMux
	refusals map[string]bool
	sessions *sessions
	pages    map[string]*page
	static   http.Handler
	log      *slog.Logger
	now      func() time.Time
}

// NewWeb returns the web queue and API. It parses the embedded templates,
// so a broken template stops startup.
func NewWeb(c WebConfig) (*Web, error) {
	if c.Queue == nil || c.Authenticate == nil || c.Principal == nil || c.Execute == nil {
		return nil, errors.New("approvals web: queue, authenticate, principal and execute are required")
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	link := c.Link
	if link == nil {
		link = func(id string) string { return "/approvals/" + id }
	}
	cop := http.NewCrossOriginProtection()
	origins := make([]string, 0, len(c.Origins))
	for _, o := range c.Origins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("approvals web: origin %q is not an absolute URL", o)
		}
		origin := strings.ToLower(u.Scheme + "://" + u.Host)
		if err := cop.AddTrustedOrigin(origin); err != nil {
			return nil, fmt.Errorf("approvals web: origin %q: %w", o, err)
		}
		origins = append(origins, origin)
	}
	w := &Web{
		queue: c.Queue, auth: c.Authenticate, reread: c.Principal, execute: c.Execute, target: c.Target,
		tools: c.Tools, link: link, origins: origins, cop: cop,
		sessions: newSessions(c.SessionTTL, time.Now),
		pages:    pages,
		static:   http.StripPrefix("/approvals/static/", http.FileServerFS(static)),
		log:      log,
		now:      time.Now,
	}
	w.route()
	return w, nil
}

// route registers the web queue's pages and the API's endpoints. A
// request no pattern matches is answered by ServeHTTP, in the page's or
// the API's own error format.
func (w *Web) route() {
	w.routes = http.NewServeMux()
	w.refusals = map[string]bool{}
	page := func(pattern string, h func(rw http.ResponseWriter, r *http.Request, reqID string)) {
		w.routes.HandleFunc(pattern, func(rw http.ResponseWriter, r *http.Request) { h(rw, r, requestID(r)) })
	}
	signedInPage := func(pattern string, h func(rw http.ResponseWriter, r *http.Request, s *signedIn)) {
		page(pattern, func(rw http.ResponseWriter, r *http.Request, reqID string) { w.withSession(rw, r, reqID, h) })
	}
	signedInPage("GET /approvals", w.listPage)
	w.routes.Handle("GET /approvals/static/style.css", w.static)
	page("GET /approvals/login", w.loginPage)
	page("POST /approvals/login", w.signIn)
	signedInPage("POST /approvals/logout", w.signOut)
	// Without this, GET /approvals/logout would be the detail page of an
	// approval called "logout".
	w.refuse("GET /approvals/logout", http.MethodPost)
	signedInPage("GET /approvals/{id}", func(rw http.ResponseWriter, r *http.Request, s *signedIn) {
		w.detailPage(rw, r, s, r.PathValue("id"), http.StatusOK, nil, "")
	})
	signedInPage("POST /approvals/{id}/decide", func(rw http.ResponseWriter, r *http.Request, s *signedIn) {
		w.decidePage(rw, r, s, r.PathValue("id"))
	})

	api := func(pattern string, h func(rw http.ResponseWriter, r *http.Request, reqID string, p store.Principal)) {
		w.routes.HandleFunc(pattern, func(rw http.ResponseWriter, r *http.Request) { w.withKey(rw, r, requestID(r), h) })
	}
	api("GET /api/v1/approvals", w.apiList)
	api("GET /api/v1/approvals/{id}", w.apiGet)
	api("POST /api/v1/approvals/{id}/approve", w.apiDecide(true))
	api("POST /api/v1/approvals/{id}/reject", w.apiDecide(false))
}

// refuse answers the requests pattern matches with 405, allowing allow.
// Such a pattern only keeps a wildcard pattern from taking the path; it
// is not a route of its own.
func (w *Web) refuse(pattern, allow string) {
	w.refusals[pattern] = true
	w.routes.HandleFunc(pattern, func(rw http.ResponseWriter, r *http.Request) {
		w.noRoute(rw, r, requestID(r), []string{allow})
	})
}

type requestIDKey struct{}

// requestID returns the id ServeHTTP gave r.
func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// ServeHTTP serves /approvals... and /api/v1/approvals...; mount it on
// both prefixes. Every response carries the security headers and a
// request id. A path with one trailing slash is the path without it.
func (w *Web) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	h := rw.Header()
	for k, v := range securityHeaders {
		h.Set(k, v)
	}
	h.Set("X-Request-Id", reqID)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, reqID))
	if trimmed := strings.TrimSuffix(r.URL.Path, "/"); trimmed != r.URL.Path && trimmed != "" {
		u := *r.URL
		u.Path, u.RawPath = trimmed, ""
		r.URL = &u
	}
	if _, pattern := w.routes.Handler(r); pattern == "" {
		w.noRoute(rw, r, reqID, w.allowed(r))
		return
	}
	w.routes.ServeHTTP(rw, r)
}

// allowed returns the methods some route takes for r's path.
func (w *Web) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := w.routes.Handler(probe); pattern != "" && !w.refusals[pattern] {
			out = append(out, m)
		}
	}
	return out
}

// noRoute answers a request for a path no route serves (allow empty), or
// that no route serves with its method, in the page's or the API's error
// format.
func (w *Web) noRoute(rw http.ResponseWriter, r *http.Request, reqID string, allow []string) {
	api := r.URL.Path == "/api/v1/approvals" || strings.HasPrefix(r.URL.Path, "/api/v1/approvals/")
	err := errNoRoute
	if len(allow) > 0 {
		rw.Header().Set("Allow", strings.Join(allow, ", "))
		err = fmt.Errorf("%w: this page takes %s", errMethod, strings.Join(allow, " and "))
		if api {
			err = fmt.Errorf("%w: use %s", errMethod, strings.Join(allow, " or "))
		}
	}
	if api {
		w.apiError(rw, r, reqID, err)
		return
	}
	w.errorPage(rw, r, reqID, nil, err)
}

// signedIn is the person behind a request's session, read afresh.
type signedIn struct {
	p     store.Principal
	id    string
	sess  session
	reqID string
}

// withSession runs next for a request with a live session whose key still
// works. A GET without one goes to the sign-in page; a POST without one is
// refused with 401; a POST whose origin is foreign or whose CSRF token is
// wrong is refused with 403. Nothing runs for a refused request.
func (w *Web) withSession(rw http.ResponseWriter, r *http.Request, reqID string, next func(http.ResponseWriter, *http.Request, *signedIn)) {
	post := r.Method == http.MethodPost
	if post {
		if err := w.sameOrigin(r); err != nil {
			w.errorPage(rw, r, reqID, nil, err)
			return
		}
	}
	s, err := w.session(r)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			clearCookie(rw, r, sessionCookie, "/approvals")
			if !post {
				http.Redirect(rw, r, "/approvals/login?next="+url.QueryEscape(safeNext(r.URL.RequestURI())), http.StatusSeeOther)
				return
			}
		}
		w.errorPage(rw, r, reqID, nil, err)
		return
	}
	s.reqID = reqID
	if post {
		if err := parseForm(rw, r); err != nil {
			w.errorPage(rw, r, reqID, s, err)
			return
		}
		token, err := single(r.PostForm, "csrf")
		if err != nil || !tokensEqual(token, s.sess.csrf) {
			w.errorPage(rw, r, reqID, s, fmt.Errorf("%w: the form's security token is missing or wrong; reload the page and try again", ErrForbidden))
			return
		}
	} else if err := w.mayRead(r.Context(), s.p); err != nil {
		w.errorPage(rw, r, reqID, s, err)
		return
	}
	next(rw, r, s)
}

// session returns the live session of r with its principal read afresh,
// or an error wrapping ErrUnauthenticated.
func (w *Web) session(r *http.Request) (*signedIn, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, fmt.Errorf("%w: sign in first", ErrUnauthenticated)
	}
	sess, ok := w.sessions.get(c.Value)
	if !ok {
		return nil, fmt.Errorf("%w: your session has ended; sign in again", ErrUnauthenticated)
	}
	p, err := w.reread(r.Context(), sess.keyID)
	if errors.Is(err, store.ErrNotFound) {
		// The key was revoked or expired: the session ends with it.
		w.sessions.end(c.Value)
		return nil, fmt.Errorf("%w: the key you signed in with was revoked or expired; sign in again", ErrUnauthenticated)
	}
	if err != nil {
		return nil, fmt.Errorf("read principal: %w", err)
	}
	if p.Kind != store.KindUser {
		w.sessions.end(c.Value)
		return nil, fmt.Errorf("%w: sign in with a user key", ErrUnauthenticated)
	}
	return &signedIn{p: p, id: c.Value, sess: sess}, nil
}

// sameOrigin refuses a POST a browser says came from another site, by
// the standard library's cross-origin protection (Sec-Fetch-Site, else
// Origin against the Host; the configured origins trusted), and, from a
// browser that sends neither header, by a Referer naming another origin.
// Under the Referrer-Policy no-referrer browsers send "Origin: null" with
// forms, which says nothing, so it is let through to the session and CSRF
// checks.
func (w *Web) sameOrigin(r *http.Request) error {
	refused := fmt.Errorf("%w: the form was sent from another site", ErrForbidden)
	if r.Header.Get("Origin") == "null" {
		c := r.Clone(r.Context())
		c.Header.Del("Origin")
		r = c
	}
	if w.cop.Check(r) != nil {
		return refused
	}
	// CrossOriginProtection reads no Referer.
	if ref := r.Header.Get("Referer"); ref != "" && r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Site") == "" {
		u, err := url.Parse(ref)
		if err != nil || (!strings.EqualFold(u.Host, r.Host) && !slices.Contains(w.origins, strings.ToLower(u.Scheme+"://"+u.Host))) {
			return refused
		}
	}
	return nil
}

// parseForm reads a urlencoded form body of at most maxForm bytes.
func parseForm(rw http.ResponseWriter, r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return invalidf("send the form as application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(rw, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("%w: the form is larger than %d bytes", errTooLarge, maxForm)
		}
		return invalidf("the form could not be read")
	}
	return nil
}

// mayRead checks that p may see the approval queue.
func (w *Web) mayRead(ctx context.Context, p store.Principal) error {
	acc, err := w.queue.rbac.Authorize(ctx, p, "approvals.read")
	if err != nil {
		return fmt.Errorf("check approvals.read: %w", err)
	}
	if !acc.Allowed {
		return fmt.Errorf("%w: %s", ErrForbidden, acc.Reason)
	}
	return nil
}

// authenticate checks a presented key for the web queue or the API: a
// user key whose role may read approvals. A refusal is audited.
func (w *Web) authenticate(r *http.Request, key, source string) (store.Principal, error) {
	p, err := w.auth(r.Context(), key)
	if err != nil {
		if !errors.Is(err, ErrUnauthenticated) {
			return store.Principal{}, err
		}
		ev := store.AuditEvent{ActorType: "unknown", Source: source, Action: "authenticate", Decision: store.DecisionDenied, Reason: "authentication failed"}
		var f *AuthFailure
		if errors.As(err, &f) {
			ev.KeyPrefix, ev.Reason = f.KeyPrefix, f.Reason
		}
		w.audit(r, ev)
		return store.Principal{}, fmt.Errorf("%w", ErrUnauthenticated)
	}
	if p.Kind != store.KindUser {
		ev := actorEvent(p, source, "authenticate", store.DecisionDenied, "an agent key cannot use the approval queue")
		w.audit(r, ev)
		return store.Principal{}, fmt.Errorf("%w: agent keys cannot use the approval queue or its API; sign in with your own user key", ErrForbidden)
	}
	return p, nil
}

// actorEvent starts an audit event of something p did.
func actorEvent(p store.Principal, source, action, decision, reason string) store.AuditEvent {
	return store.AuditEvent{
		WorkspaceID: p.WorkspaceID, ActorType: p.Kind, ActorID: p.MemberID, ActorName: p.MemberName, KeyPrefix: p.KeyPrefix,
		Source: source, Action: action, Decision: decision, Reason: reason,
	}
}

// audit records a sign-in event; a failure is logged (the sign-in itself
// changes no data).
func (w *Web) audit(r *http.Request, ev store.AuditEvent) {
	ev.At = w.now().UTC()
	ev.Reason = guardrails.RedactString(ev.Reason)
	if err := w.queue.store.AppendAudit(context.WithoutCancel(r.Context()), ev); err != nil {
		w.log.Error("audit web sign-in", "action", ev.Action, "err", err)
	}
}

// decide approves or rejects as p and, on approval, runs the call at once.
// The run is not cancelled when the browser or script goes away.
func (w *Web) decide(ctx context.Context, p store.Principal, source, id string, approve bool, comment string) (store.Approval, error) {
	a, err := w.queue.Decide(ctx, p, source, id, approve, comment)
	if err != nil {
		return store.Approval{}, notFound(id, err)
	}
	if !approve {
		return a, nil
	}
	return w.execute(context.WithoutCancel(ctx), a, source)
}

// notFound words an unknown approval for the caller.
func notFound(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no approval %s in this workspace: %w", id, store.ErrNotFound)
	}
	return err
}

// checkID refuses what cannot be an approval id.
func checkID(id string) error {
	if !approvalID.MatchString(id) {
		return invalidf("%q is not an approval id (they look like apr_...)", truncate(id, 80))
	}
	return nil
}

// checkComment refuses a comment that is too long, not UTF-8, or holds
// control characters other than line breaks and tabs.
func checkComment(c string) error {
	if len(c) > MaxComment {
		return invalidf("comment is %d bytes; the limit is %d", len(c), MaxComment)
	}
	if !utf8.ValidString(c) {
		return invalidf("comment is not valid UTF-8")
	}
	for _, r := range c {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return invalidf("comment holds a control character (U+%04X)", r)
		}
	}
	return nil
}

// safeNext returns where to go after signing in: a web queue page, never
// another site.
var nextRe = regexp.MustCompile(`^/approvals(/apr_[A-Za-z0-9-]{1,64})?(\?[A-Za-z0-9_=&%.+-]{0,256})?$`)

func safeNext(next string) string {
	if nextRe.MatchString(next) {
		return next
	}
	return "/approvals?state=pending"
}

// setCookie sets a cookie scoped to path: HttpOnly, SameSite=Strict, and
// Secure when the request came over TLS.
func setCookie(rw http.ResponseWriter, r *http.Request, name, value, path string, ttl time.Duration) {
	http.SetCookie(rw, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: int(ttl.Seconds()), Expires: time.Now().Add(ttl),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func clearCookie(rw http.ResponseWriter, r *http.Request, name, path string) {
	http.SetCookie(rw, &http.Cookie{
		Name: name, Value: "", Path: path, MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newRequestID returns a random id that ties an error to its log line.
func newRequestID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "req_" + idEncoding.EncodeToString(b)
}
