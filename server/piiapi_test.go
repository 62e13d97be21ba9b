package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

// putPII sends PUT /api/v1/pii with key and body.
func putPII(t *testing.T, e *env, key, body string) (int, string) {
	t.Helper()
	status, _, b := servertest.Send(t, http.MethodPut, e.http.URL+"/api/v1/pii", key, body)
	return status, b
}

// emailLevel reads the classification of analytics.customers.email from
// the store.
func (e *env) emailLevel(t *testing.T) string {
	t.Helper()
	classes, err := e.db.PIIClasses(t.Context(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range classes {
		if c.Column == "analytics.customers.email" {
			return c.Level
		}
	}
	return ""
}

func TestPIIAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	owner, _ := e.key(t, "olivia", "owner", store.KindUser, nil)
	member, _ := e.key(t, "mia", "member", store.KindUser, nil)
	ownerAgent, _ := e.key(t, "bot", "owner", store.KindAgent, nil)
	loosen := `{"columns":{"analytics.customers.email":"none"}}`

	// Refused: nothing changes, and each refusal is audited.
	for _, tc := range []struct {
		name, key, body, want string
		status                int
	}{
		{"agent key with the owner role", ownerAgent, loosen, "agent keys may not", http.StatusForbidden},
		{"member without governance.manage", member, loosen, "governance.manage", http.StatusForbidden},
		{"bad key", "ss_aaaaaaaaaaaa_" + strings.Repeat("a", 52), loosen, "unauthenticated", http.StatusUnauthorized},
		{"unknown column", owner, `{"columns":{"analytics.customers.emial":"none"}}`, "has no column emial", http.StatusBadRequest},
		{"unknown level", owner, `{"columns":{"analytics.customers.email":"public"}}`, `\"public\" is not a PII level`, http.StatusBadRequest},
		{"one bad among good", owner, `{"columns":{"analytics.customers.email":"none","analytics.customers.notes":"x"}}`, "not a PII level", http.StatusBadRequest},
		{"unknown field", owner, `{"columns":{},"level":"none"}`, "the body must be", http.StatusBadRequest},
		{"not JSON", owner, `columns=email`, "the body must be", http.StatusBadRequest},
		{"no columns", owner, `{"columns":{}}`, "no columns", http.StatusBadRequest},
	} {
		before := len(e.audit(t))
		status, body := putPII(t, e, tc.key, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, status, body, tc.status, tc.want)
		}
		if got := e.emailLevel(t); got != store.PIIRedacted {
			t.Fatalf("%s: email is now %q", tc.name, got)
		}
		if after := e.audit(t); len(after) != before+1 || after[0].Source != store.SourceAPI || after[0].Decision == store.DecisionExecuted {
			t.Errorf("%s: audit = %+v", tc.name, after[0])
		}
	}

	// A person with governance.manage loosens email: agents see it at once.
	status, body := putPII(t, e, owner, loosen)
	if status != http.StatusOK || e.emailLevel(t) != store.PIINone {
		t.Fatalf("owner PUT: %d %s", status, body)
	}
	ev := e.lastAudit(t)
	if ev.Source != store.SourceAPI || ev.Action != "governance.manage" || ev.Decision != store.DecisionExecuted || ev.ActorName != "olivia" {
		t.Errorf("audit of the change = %+v", ev)
	}
	agent, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	var p previewResult
	structured(t, call(t, e.client(t, agent), "preview_model", map[string]any{"model": "customers", "limit": 10}), &p)
	if v, _ := p.Rows[0]["email"].(string); !strings.Contains(v, "@") {
		t.Errorf("after classifying email none, the preview shows %v", p.Rows[0]["email"])
	}

	// GET lists every column with its level.
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v1/pii", nil)
	req.Header.Set("Authorization", "Bearer "+owner)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Columns []store.PIIClass }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %v", resp.StatusCode, err)
	}
	levels := map[string]string{}
	for _, c := range list.Columns {
		levels[c.Column] = c.Level
	}
	if levels["analytics.customers.email"] != "none" || levels["analytics.customers.notes"] != "blocked" || levels["analytics.orders.amount"] != "none" {
		t.Errorf("GET levels = %v", levels)
	}
}
