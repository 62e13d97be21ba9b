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

// The destinations API (DESIGN.md section 11): /api/v1/destinations, for
// people who set destinations up from scripts and chat bots, beside
// "signalsmith destinations" on the command line.
//
//	GET    /api/v1/destinations            list            destinations.read
//	POST   /api/v1/destinations            create          destinations.create
//	GET    /api/v1/destinations/{id}       show            destinations.read
//	PATCH  /api/v1/destinations/{id}       update          destinations.update
//	DELETE /api/v1/destinations/{id}       delete          destinations.delete
//	POST   /api/v1/destinations/{id}/test  test            destinations.test
//
// A create or update body is destinationBody. Keys are bearer keys; an
// agent key may read (with destinations.read) but every write is refused
// whatever its role, since agents never set credentials. Every request is
// audited with source API, a write in the transaction that makes it;
// the secret is sealed under the master key before it reaches the store
// and appears in no answer, log line or audit record.

// maxDestinationBody caps a create or update body.
const maxDestinationBody = 16 << 10

// destinationBody is what POST and PATCH take; on PATCH absent fields keep
// their value. Timeout is a Go duration ("10s").
type destinationBody struct {
	Name        *string `json:"name"`
	Type        *string `json:"type"`
	Category    *string `json:"category"`
	Environment *string `json:"environment"`
	URL         *string `json:"url"`
	Secret      *string `json:"secret"`
	Dir         *string `json:"dir"`
	Format      *string `json:"format"`
	BatchSize   *int    `json:"batch_size"`
	Timeout     *string `json:"timeout"`
}

// apply copies the body's fields into s.
func (b destinationBody) apply(s *destinations.Spec) error {
	for _, f := range []struct {
		from *string
		to   *string
	}{{b.Name, &s.Name}, {b.Type, &s.Type}, {b.Category, &s.Category}, {b.Environment, &s.Environment},
		{b.URL, &s.URL}, {b.Dir, &s.Dir}, {b.Format, &s.Format}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	if b.BatchSize != nil {
		s.BatchSize = *b.BatchSize
	}
	if b.Timeout != nil {
		d, err := time.ParseDuration(*b.Timeout)
		if err != nil {
			return fmt.Errorf(`timeout must be a duration such as "10s": %w`, store.ErrInvalid)
		}
		s.Timeout = d
	}
	return nil
}

func (s *Server) serveDestinations(w http.ResponseWriter, r *http.Request) {
	if reason := rebinding(r, s.allowedOrigins); reason != "" {
		http.Error(w, "Forbidden: "+reason, http.StatusForbidden)
		return
	}
	ctx := r.Context()
	start := time.Now()
	reqID := newRequestID()
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v1/destinations"), "/")
	id, sub, _ := strings.Cut(rest, "/")
	perm, ok := destinationPermission(r.Method, id, sub)
	if !ok {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method_not_allowed",
			"message": "use GET, POST /api/v1/destinations; GET, PATCH, DELETE /api/v1/destinations/{id}; POST /api/v1/destinations/{id}/test"})
		return
	}
	p, ev, ok := s.apiPrincipal(w, r, start, reqID, perm, "destination")
	if !ok {
		return
	}
	ev.ResourceID = id
	fail := func(ev *store.AuditEvent, err error) { s.apiError(w, r, ev, reqID, start, err, destinationMessage) }

	acc, err := s.gate.rbac.Authorize(ctx, p, perm)
	switch {
	case err != nil:
		fail(&ev, err)
		return
	case !acc.Allowed:
		fail(&ev, fmt.Errorf("%w: %s", errForbidden, acc.Reason))
		return
	case p.Kind != store.KindUser && perm != "destinations.read":
		fail(&ev, fmt.Errorf("%w: agent keys may only read destinations; a person with %s must make this change", errForbidden, perm))
		return
	}

	if perm == "destinations.read" {
		var out any
		if id == "" {
			all, err := s.store.ListDestinations(ctx, p.WorkspaceID)
			if err != nil {
				fail(&ev, err)
				return
			}
			if all == nil {
				all = []store.Destination{}
			}
			ev.Result, out = fmt.Sprintf("%d destinations", len(all)), map[string]any{"destinations": all}
		} else {
			d, err := s.store.GetDestination(ctx, p.WorkspaceID, id)
			if err != nil {
				fail(&ev, err)
				return
			}
			ev.Result, out = "destination "+d.Name, d
		}
		ev.Decision = store.DecisionAllowed
		if err := s.gate.audit(ctx, &ev, start); err != nil {
			fail(nil, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
		return
	}

	var body destinationBody
	if r.Method == http.MethodPost && sub == "" || r.Method == http.MethodPatch {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDestinationBody))
		if err == nil {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err = dec.Decode(&body); err == nil && dec.More() {
				err = errors.New("trailing data")
			}
		}
		if err != nil {
			fail(&ev, fmt.Errorf(`the body must be one JSON object with name, type, category, environment, url, secret, dir, format, batch_size, timeout: %w`, store.ErrInvalid))
			return
		}
	}
	var secret []byte
	if body.Secret != nil {
		secret = []byte(*body.Secret)
	}
	defer clear(secret)
	status := http.StatusOK
	var out any
	var change func(ctx context.Context) error
	switch {
	case r.Method == http.MethodPost && id == "":
		var spec destinations.Spec
		if err := body.apply(&spec); err != nil {
			fail(&ev, err)
			return
		}
		ev.Args, ev.Result, status = destinationAuditArgs(spec, secret != nil), "created destination "+spec.Name, http.StatusCreated
		change = func(ctx context.Context) error {
			d, err := s.destinations.Create(ctx, p.WorkspaceID, spec, secret)
			out = d
			return err
		}
	case r.Method == http.MethodPatch:
		cur, err := s.store.GetDestination(ctx, p.WorkspaceID, id)
		if err != nil {
			fail(&ev, err)
			return
		}
		spec := destinations.SpecOf(cur)
		if err := body.apply(&spec); err != nil {
			fail(&ev, err)
			return
		}
		ev.Args, ev.Result = destinationAuditArgs(spec, secret != nil), "updated destination "+cur.Name
		change = func(ctx context.Context) error {
			d, err := s.destinations.Update(ctx, cur, spec, secret)
			out = d
			return err
		}
	case r.Method == http.MethodDelete:
		ev.Result = "deleted destination " + id
		change = func(ctx context.Context) error {
			out = map[string]string{"deleted": id}
			return s.store.DeleteDestination(ctx, p.WorkspaceID, id)
		}
	default: // POST {id}/test
		ev.Result = "tested destination " + id
		change = func(ctx context.Context) error {
			sender, _, err := s.senders.Sender(ctx, p.WorkspaceID, id)
			if err != nil {
				return err
			}
			defer sender.Close()
			if err := destinations.Test(ctx, sender); err != nil {
				return fmt.Errorf("the destination did not pass: %v: %w", err, store.ErrInvalid)
			}
			out = map[string]any{"ok": true}
			return nil
		}
	}
	err = store.Audited(ctx, s.store, ev, func(err error) string { return guardrails.RedactString(destinationMessage(err)) }, change)
	if err != nil {
		fail(nil, err)
		return
	}
	writeJSON(w, status, out)
}

// destinationPermission is the permission a request needs, and false for
// a method or path the API does not have.
func destinationPermission(method, id, sub string) (string, bool) {
	switch {
	case sub == "test" && id != "" && method == http.MethodPost:
		return "destinations.test", true
	case sub != "":
		return "", false
	case method == http.MethodGet || method == http.MethodHead:
		return "destinations.read", true
	case id == "" && method == http.MethodPost:
		return "destinations.create", true
	case id != "" && method == http.MethodPatch:
		return "destinations.update", true
	case id != "" && method == http.MethodDelete:
		return "destinations.delete", true
	}
	return "", false
}

// destinationAuditArgs is what an audit record says of a change: the
// settings and whether a secret was given, never the secret.
func destinationAuditArgs(s destinations.Spec, secretGiven bool) map[string]any {
	args := map[string]any{"name": s.Name, "type": s.Type, "category": s.Category, "environment": s.Environment}
	for k, v := range map[string]string{"url": s.URL, "dir": s.Dir, "format": s.Format} {
		if v != "" {
			args[k] = v
		}
	}
	if secretGiven {
		args["secret"] = "[set]"
	}
	return guardrails.Redact(args)
}

// destinationMessage is what a caller may read of err.
func destinationMessage(err error) string {
	var inUse *store.InUseError
	switch {
	case errors.As(err, &inUse):
		return inUse.Error() + ": delete or change those syncs first"
	case errors.Is(err, destinations.ErrNoMasterKey):
		return "the server has no master key to seal the secret with: its operator must set " + destinations.KeyEnv
	case errors.Is(err, store.ErrNotFound):
		return "no such destination in this workspace (see GET /api/v1/destinations)"
	case errors.Is(err, store.ErrConflict):
		return "a destination with that name exists already: choose another name"
	}
	return publicMessage(err)
}
