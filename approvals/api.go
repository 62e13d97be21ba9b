package approvals

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// ErrUnauthenticated means a presented API key is missing, malformed,
// unknown, wrong, revoked or expired, or a web session is missing, expired
// or ended. An AuthenticateFunc returns an error wrapping it for a bad key.
var ErrUnauthenticated = errors.New("invalid, revoked or expired API key")

// AuthFailure is a refused key with what the audit record keeps: the key's
// public prefix when it was well formed, and the reason. Its text is the
// generic ErrUnauthenticated message, so a guesser learns nothing.
type AuthFailure struct {
	KeyPrefix string
	Reason    string
}

func (f *AuthFailure) Error() string { return ErrUnauthenticated.Error() }

// Unwrap makes errors.Is(err, ErrUnauthenticated) true.
func (f *AuthFailure) Unwrap() error { return ErrUnauthenticated }

// HTTP-level error kinds of the web queue and the API.
var (
	errTooLarge = errors.New("request body too large")
	errMethod   = errors.New("method not allowed")
	errNoRoute  = fmt.Errorf("no such page: %w", store.ErrNotFound)
)

// errorKinds maps error kinds to the HTTP status and the code the API
// returns, first match wins. It is the one place this happens for the web
// queue and the API. Anything else is an internal error (500): its detail
// goes to the log with a request id, the caller gets only the id.
var errorKinds = []struct {
	kind   error
	status int
	code   string
}{
	{ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{ErrForbidden, http.StatusForbidden, "forbidden"},
	{store.ErrNotFound, http.StatusNotFound, "not_found"},
	{store.ErrConflict, http.StatusConflict, "conflict"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{errMethod, http.StatusMethodNotAllowed, "method_not_allowed"},
	{store.ErrInvalid, http.StatusBadRequest, "invalid"},
}

// classify returns the status and code of err, and whether its text may be
// shown to the caller (it may for every kind in errorKinds).
func classify(err error) (status int, code string, public bool) {
	for _, k := range errorKinds {
		if errors.Is(err, k.kind) {
			return k.status, k.code, true
		}
	}
	return http.StatusInternalServerError, "internal", false
}

// maxJSONBody caps an API request body.
const maxJSONBody = 16 << 10

// apiApproval is an approval as the API returns it, with its page's URL.
type apiApproval struct {
	store.Approval
	URL string `json:"url"`
}

// decisionBody is the body of POST .../approve and .../reject.
type decisionBody struct {
	Comment string `json:"comment"`
}

// withKey runs next for an API request whose "Authorization: Bearer"
// user key may read approvals; the API's routes (Web.route) are GET
// /api/v1/approvals (list), GET /api/v1/approvals/{id} and POST
// /api/v1/approvals/{id}/approve|reject. Decisions have source API.
func (w *Web) withKey(rw http.ResponseWriter, r *http.Request, reqID string, next func(http.ResponseWriter, *http.Request, string, store.Principal)) {
	p, err := w.authenticate(r, bearer(r), store.SourceAPI)
	if err != nil {
		rw.Header().Set("WWW-Authenticate", `Bearer realm="signalsmith", error="invalid_token"`)
		w.apiError(rw, r, reqID, err)
		return
	}
	if err := w.mayRead(r.Context(), p); err != nil {
		w.apiError(rw, r, reqID, err)
		return
	}
	next(rw, r, reqID, p)
}

// apiList answers GET /api/v1/approvals.
func (w *Web) apiList(rw http.ResponseWriter, r *http.Request, reqID string, p store.Principal) {
	lq, err := w.parseList(r.Context(), p.WorkspaceID, r.URL.Query(), true)
	if err != nil {
		w.apiError(rw, r, reqID, err)
		return
	}
	list, err := w.list(r.Context(), lq)
	if err != nil {
		w.apiError(rw, r, reqID, err)
		return
	}
	out := make([]apiApproval, len(list))
	for i, a := range list {
		out[i] = apiApproval{Approval: a, URL: w.link(a.ID)}
	}
	writeJSON(rw, http.StatusOK, map[string]any{"approvals": out})
}

// apiGet answers GET /api/v1/approvals/{id}.
func (w *Web) apiGet(rw http.ResponseWriter, r *http.Request, reqID string, p store.Principal) {
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		w.apiError(rw, r, reqID, err)
		return
	}
	if len(r.URL.Query()) > 0 {
		w.apiError(rw, r, reqID, invalidf("GET /api/v1/approvals/{id} takes no query parameters"))
		return
	}
	a, err := w.queue.store.GetApproval(r.Context(), p.WorkspaceID, id)
	if err != nil {
		w.apiError(rw, r, reqID, notFound(id, err))
		return
	}
	writeJSON(rw, http.StatusOK, apiApproval{Approval: a, URL: w.link(a.ID)})
}

// apiDecide answers POST /api/v1/approvals/{id}/approve (approve) or
// .../reject, with an optional {"comment": "..."} body.
func (w *Web) apiDecide(approve bool) func(http.ResponseWriter, *http.Request, string, store.Principal) {
	action := "reject"
	if approve {
		action = "approve"
	}
	return func(rw http.ResponseWriter, r *http.Request, reqID string, p store.Principal) {
		id := r.PathValue("id")
		if err := checkID(id); err != nil {
			w.apiError(rw, r, reqID, err)
			return
		}
		if len(r.URL.Query()) > 0 {
			w.apiError(rw, r, reqID, invalidf("POST /api/v1/approvals/{id}/%s takes no query parameters; send {\"comment\": \"...\"} in the body", action))
			return
		}
		body, err := decodeDecision(rw, r)
		if err != nil {
			w.apiError(rw, r, reqID, err)
			return
		}
		a, err := w.decide(r.Context(), p, store.SourceAPI, id, approve, body.Comment)
		if err != nil {
			w.apiError(rw, r, reqID, err)
			return
		}
		writeJSON(rw, http.StatusOK, apiApproval{Approval: a, URL: w.link(a.ID)})
	}
}

// decodeDecision reads a decision body: one JSON object with at most a
// comment, no unknown fields, no trailing data. An empty body is no comment.
func decodeDecision(rw http.ResponseWriter, r *http.Request) (decisionBody, error) {
	var body decisionBody
	data, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxJSONBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return body, fmt.Errorf("%w: the limit is %d bytes", errTooLarge, maxJSONBody)
	}
	if err != nil {
		return body, invalidf("the request body could not be read")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return body, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return body, invalidf("the body is not valid JSON (at byte %d); send {\"comment\": \"...\"}", syntax.Offset)
		case errors.As(err, &typ):
			return body, invalidf("%s must be a %s; send {\"comment\": \"...\"}", orDefault(typ.Field, "the body"), typeWord(typ.Type.Kind().String()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return body, invalidf("%s; the only field is \"comment\"", strings.TrimPrefix(err.Error(), "json: "))
		default:
			return body, invalidf("the body is not valid JSON; send {\"comment\": \"...\"}")
		}
	}
	if dec.More() {
		return body, invalidf("the body holds more than one JSON value; send one object")
	}
	return body, checkComment(body.Comment)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// typeWord names a Go kind as JSON does.
func typeWord(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "struct", "map":
		return "JSON object"
	default:
		return kind
	}
}

// apiError answers with {"error": {"code", "message", "request_id"}}.
func (w *Web) apiError(rw http.ResponseWriter, r *http.Request, reqID string, err error) {
	status, code, public := classify(err)
	msg := err.Error()
	if !public {
		w.log.Error("approvals API", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error (request id " + reqID + "); give the request id to a workspace admin if it persists"
	}
	writeJSON(rw, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "request_id": reqID}})
}

// bearer returns the key of an "Authorization: Bearer" header.
func bearer(r *http.Request) string {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(key)
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	rw.WriteHeader(status)
	enc := json.NewEncoder(rw)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}
