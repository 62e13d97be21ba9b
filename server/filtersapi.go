package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// The destination filters API (DESIGN.md section 6):
// /api/v1/destination-filters, beside "signalsmith filters" on the
// command line.
//
//	GET    /api/v1/destination-filters       list    governance.read
//	POST   /api/v1/destination-filters       add     governance.manage
//	DELETE /api/v1/destination-filters/{id}  remove  governance.manage
//
// A POST body is a store.DestinationFilter without id, workspace or
// creation fields, checked by destinations.CheckFilter. Keys are bearer
// user keys: an agent key is refused whatever its role, since an agent
// never changes its own guardrails. Every request is audited (source
// API), a change in the transaction that makes it; a refused change is
// audited as failed and writes nothing.

// maxFilterBody caps a POST body.
const maxFilterBody = 16 << 10

// filterBody is what POST takes.
type filterBody struct {
	Priority      int    `json:"priority"`
	Category      string `json:"category"`
	Environment   string `json:"environment"`
	DestinationID string `json:"destination_id"`
	Model         string `json:"model"`
	Column        string `json:"column"`
	PIILevel      string `json:"pii_level"`
	Effect        string `json:"effect"`
	Limit         int64  `json:"limit"`
	Per           string `json:"per"`
	Reason        string `json:"reason"`
}

func (s *Server) serveDestinationFilters(w http.ResponseWriter, r *http.Request) {
	if reason := rebinding(r, s.allowedOrigins); reason != "" {
		http.Error(w, "Forbidden: "+reason, http.StatusForbidden)
		return
	}
	ctx := r.Context()
	start := time.Now()
	reqID := newRequestID()
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v1/destination-filters"), "/")
	perm := ""
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && id == "":
		perm = "governance.read"
	case r.Method == http.MethodPost && id == "", r.Method == http.MethodDelete && id != "" && !strings.Contains(id, "/"):
		perm = "governance.manage"
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method_not_allowed",
			"message": "use GET or POST /api/v1/destination-filters, DELETE /api/v1/destination-filters/{id}"})
		return
	}
	p, ev, ok := s.apiPrincipal(w, r, start, reqID, perm, "destination_filter")
	if !ok {
		return
	}
	ev.ResourceID = id
	fail := func(ev *store.AuditEvent, err error) { s.apiError(w, r, ev, reqID, start, err, publicMessage) }
	if p.Kind != store.KindUser {
		fail(&ev, fmt.Errorf("%w: agent keys may not read or change destination filters; a person with %s must", errForbidden, perm))
		return
	}
	acc, err := s.gate.rbac.Authorize(ctx, p, perm)
	if err != nil {
		fail(&ev, err)
		return
	}
	if !acc.Allowed {
		fail(&ev, fmt.Errorf("%w: %s", errForbidden, acc.Reason))
		return
	}
	if perm == "governance.read" {
		list, err := s.store.ListDestinationFilters(ctx, p.WorkspaceID)
		if err != nil {
			fail(&ev, err)
			return
		}
		if list == nil {
			list = []store.DestinationFilter{}
		}
		ev.Decision, ev.Result = store.DecisionAllowed, fmt.Sprintf("%d destination filters", len(list))
		if err := s.gate.audit(ctx, &ev, start); err != nil {
			fail(nil, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"filters": list})
		return
	}
	var change func(ctx context.Context) error
	status, out := http.StatusOK, any(map[string]string{"removed": id})
	if r.Method == http.MethodDelete {
		ev.Result = "removed destination filter " + id
		change = func(ctx context.Context) error { return s.store.DeleteDestinationFilter(ctx, p.WorkspaceID, id) }
	} else {
		var body filterBody
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFilterBody))
		if err == nil {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err = dec.Decode(&body); err == nil && dec.More() {
				err = errors.New("trailing data")
			}
		}
		if err != nil {
			fail(&ev, fmt.Errorf("the body must be one JSON object with effect, reason, priority, category, environment, destination_id, model, column, pii_level, limit, per: %w", store.ErrInvalid))
			return
		}
		f := store.DestinationFilter{WorkspaceID: p.WorkspaceID, Priority: body.Priority, Category: body.Category,
			Environment: body.Environment, DestinationID: body.DestinationID, Model: body.Model, Column: body.Column,
			PIILevel: body.PIILevel, Effect: body.Effect, Limit: body.Limit, Per: body.Per, Reason: body.Reason, CreatedBy: p.MemberName}
		ev.Args = guardrails.Redact(map[string]any{"effect": f.Effect, "priority": f.Priority, "category": f.Category,
			"environment": f.Environment, "destination": f.DestinationID, "model": f.Model, "column": f.Column,
			"pii_level": f.PIILevel, "limit": f.Limit, "per": f.Per, "reason": f.Reason})
		ev.Result, status = "added a "+f.Effect+" destination filter", http.StatusCreated
		change = func(ctx context.Context) error {
			checked, err := destinations.CheckFilter(ctx, s.store, f)
			if err != nil {
				return err
			}
			created, err := s.store.CreateDestinationFilter(ctx, checked)
			out = created
			return err
		}
	}
	err = store.Audited(ctx, s.store, ev, func(err error) string { return guardrails.RedactString(publicMessage(err)) }, change)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("no destination filter %q in this workspace: list them with GET /api/v1/destination-filters: %w", id, store.ErrInvalid)
		}
		fail(nil, err)
		return
	}
	writeJSON(w, status, out)
}
