package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// The PII classification API (DESIGN.md section 3): /api/v1/pii, for people
// who classify warehouse columns from scripts and chat bots, beside
// "signalsmith pii" on the command line. GET lists every warehouse column
// with its level (governance.read); PUT classifies columns
// (governance.manage) with the body
//
//	{"columns": {"analytics.customers.email": "redacted"}}
//
// Keys are bearer user keys: an agent key is refused whatever its role,
// since an agent never changes its own guardrails. A PUT is checked against
// the warehouse and audited (source API) in the transaction that makes it;
// a refused PUT is audited as failed and changes nothing.

// maxPIIBody caps a PUT body.
const maxPIIBody = 64 << 10

// errForbidden is a caller that may not do what it asked.
var errForbidden = errors.New("forbidden")

// piiBody is what PUT /api/v1/pii takes.
type piiBody struct {
	Columns map[string]string `json:"columns"`
}

func (s *Server) servePII(w http.ResponseWriter, r *http.Request) {
	if reason := rebinding(r, s.allowedOrigins); reason != "" {
		http.Error(w, "Forbidden: "+reason, http.StatusForbidden)
		return
	}
	ctx := r.Context()
	start := time.Now()
	reqID := newRequestID()
	perm := "governance.read"
	if r.Method == http.MethodPut {
		perm = "governance.manage"
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, PUT")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method_not_allowed", "message": "use GET or PUT"})
		return
	}
	p, ev, ok := s.apiPrincipal(w, r, start, reqID, perm, "pii")
	if !ok {
		return
	}
	ev.ResourceID = p.WorkspaceID

	var classes []store.PIIClass
	change := func() error {
		if p.Kind != store.KindUser {
			return fmt.Errorf("%w: agent keys may not read or change PII classification; a person with %s must", errForbidden, perm)
		}
		acc, err := s.gate.rbac.Authorize(ctx, p, perm)
		if err != nil {
			return err
		}
		if !acc.Allowed {
			return fmt.Errorf("%w: %s", errForbidden, acc.Reason)
		}
		if r.Method != http.MethodPut {
			return nil
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPIIBody))
		if err != nil {
			return fmt.Errorf("read the body (at most %d bytes): %w", maxPIIBody, store.ErrInvalid)
		}
		var body piiBody
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || dec.More() {
			return fmt.Errorf(`the body must be {"columns": {"schema.table.column": "level", ...}}: %w`, store.ErrInvalid)
		}
		for col, level := range body.Columns {
			classes = append(classes, store.PIIClass{Column: col, Level: level, UpdatedBy: p.MemberName})
		}
		ev.Args = guardrails.Redact(map[string]any{"columns": body.Columns})
		ev.Result = fmt.Sprintf("classified %d columns", len(classes))
		return nil
	}
	if err := change(); err != nil {
		s.apiError(w, r, &ev, reqID, start, err, publicMessage)
		return
	}
	if r.Method != http.MethodPut {
		list, err := s.store.PIIClasses(ctx, p.WorkspaceID)
		if err == nil {
			list, err = guardrails.PIIColumns(ctx, s.warehouse, list)
		}
		if err != nil {
			s.apiError(w, r, &ev, reqID, start, err, publicMessage)
			return
		}
		ev.Decision, ev.Result = store.DecisionAllowed, fmt.Sprintf("%d columns", len(list))
		if err := s.gate.audit(ctx, &ev, start); err != nil {
			s.apiError(w, r, nil, reqID, start, err, publicMessage)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"columns": list})
		return
	}
	err := store.Audited(ctx, s.store, ev, func(err error) string { return guardrails.RedactString(publicMessage(err)) }, func(ctx context.Context) error {
		checked, err := guardrails.CheckPIIClasses(ctx, s.warehouse, classes)
		if err != nil {
			return err
		}
		classes = checked
		return s.store.SetPIIClasses(ctx, p.WorkspaceID, checked)
	})
	if err != nil {
		s.apiError(w, r, nil, reqID, start, err, publicMessage)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"columns": classes})
}

// apiPrincipal authenticates a request to a JSON API for people by its
// bearer key and begins its audit event (source API, action perm, the
// caller as actor). A bad key is audited as denied and answered 401, and
// ok is false.
func (s *Server) apiPrincipal(w http.ResponseWriter, r *http.Request, start time.Time, reqID, perm, resourceType string) (store.Principal, store.AuditEvent, bool) {
	ctx := r.Context()
	p, err := s.auth.Authenticate(ctx, bearer(r))
	if err != nil {
		ev := s.gate.event(ctx, "", nil, start)
		s.gate.noteAuthFailure(ev, err)
		ev.Source, ev.Action, ev.ResourceType, ev.Decision = store.SourceAPI, perm, resourceType, store.DecisionDenied
		_ = s.gate.audit(ctx, ev, start)
		w.Header().Set("WWW-Authenticate", `Bearer realm="signalsmith", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthenticated", "message": ErrUnauthenticated.Error()})
		return store.Principal{}, store.AuditEvent{}, false
	}
	ev := store.AuditEvent{At: start.UTC(), Source: store.SourceAPI, Action: perm, ResourceType: resourceType, RequestID: reqID}
	setActor(&ev, p)
	return p, ev, true
}

// publicMessage is err's text when its kind may be shown, else a generic
// one.
func publicMessage(err error) string {
	if errors.Is(err, store.ErrInvalid) || errors.Is(err, errForbidden) {
		return err.Error()
	}
	return "internal error"
}

// apiError answers a refused or failed request to a JSON API for people
// (pii, destinations, destination filters) with the status of its kind and
// message(err) (redacted), and, when ev is not nil, audits it as denied
// (forbidden) or failed. An internal error is logged and answered with the
// request id only.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, ev *store.AuditEvent, reqID string, start time.Time, err error, message func(error) string) {
	status, code := http.StatusInternalServerError, "internal"
	var inUse *store.InUseError
	switch {
	case errors.Is(err, errForbidden):
		status, code = http.StatusForbidden, "forbidden"
	case errors.Is(err, destinations.ErrNoMasterKey):
		status, code = http.StatusServiceUnavailable, "no_master_key"
	case errors.As(err, &inUse), errors.Is(err, store.ErrConflict):
		status, code = http.StatusConflict, "conflict"
	case errors.Is(err, store.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, store.ErrInvalid):
		status, code = http.StatusBadRequest, "invalid"
	}
	msg := guardrails.RedactString(message(err))
	if status == http.StatusInternalServerError {
		s.log.Error("api", "path", r.URL.Path, "request_id", reqID, "err", err)
		msg = internalMessage(reqID)
	}
	if ev != nil {
		ev.Decision, ev.Reason, ev.Result = store.DecisionFailed, msg, ""
		if status == http.StatusForbidden {
			ev.Decision = store.DecisionDenied
		}
		_ = s.gate.audit(r.Context(), ev, start)
	}
	writeJSON(w, status, map[string]string{"error": code, "message": msg, "request_id": reqID})
}
