package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

func TestDestinationFiltersAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	owner, _ := e.key(t, "olivia", "owner", store.KindUser, nil)
	member, _ := e.key(t, "mia", "member", store.KindUser, nil)
	ownerAgent, _ := e.key(t, "bot", "owner", store.KindAgent, nil)
	url := e.http.URL + "/api/v1/destination-filters"
	other, err := e.db.EnsureWorkspace(t.Context(), "other", guardrails.BuiltInRoles())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := e.db.CreateDestination(t.Context(), store.Destination{WorkspaceID: other.ID, Name: "Theirs", Type: "webhook",
		Category: "crm", Environment: "production", Config: map[string]any{"url": "https://127.0.0.1/hook"}})
	if err != nil {
		t.Fatal(err)
	}
	good := `{"effect":"drop","column":"phone","category":"advertising","reason":"no phones to ad platforms"}`
	count := func() int {
		t.Helper()
		list, err := e.db.ListDestinationFilters(t.Context(), e.ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}

	for _, tc := range []struct {
		name, key, body, want string
		status                int
	}{
		{"agent key with the owner role", ownerAgent, good, "agent keys may not", http.StatusForbidden},
		{"member without governance.manage", member, good, "governance.manage", http.StatusForbidden},
		{"bad key", "ss_aaaaaaaaaaaa_" + strings.Repeat("a", 52), good, "unauthenticated", http.StatusUnauthorized},
		{"unknown category", owner, `{"effect":"drop","column":"phone","category":"billboards","reason":"r"}`, `category \"billboards\"`, http.StatusBadRequest},
		{"unknown effect", owner, `{"effect":"encrypt","column":"phone","reason":"r"}`, `effect \"encrypt\"`, http.StatusBadRequest},
		{"unknown column", owner, `{"effect":"drop","column":"shoe_size","reason":"r"}`, `column \"shoe_size\"`, http.StatusBadRequest},
		{"unknown level", owner, `{"effect":"drop","pii_level":"secret","reason":"r"}`, `pii level \"secret\"`, http.StatusBadRequest},
		{"another workspace's destination", owner, `{"effect":"block","destination_id":"` + foreign.ID + `","reason":"r"}`, "is not a destination of this workspace", http.StatusBadRequest},
		{"unknown field", owner, `{"effect":"drop","column":"phone","reason":"r","workspace_id":"x"}`, "the body must be", http.StatusBadRequest},
		{"not JSON", owner, `effect=drop`, "the body must be", http.StatusBadRequest},
	} {
		before := len(e.audit(t))
		status, _, body := servertest.Send(t, http.MethodPost, url, tc.key, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, status, body, tc.status, tc.want)
		}
		if n := count(); n != 0 {
			t.Fatalf("%s: %d filters stored", tc.name, n)
		}
		if after := e.audit(t); len(after) != before+1 || after[len(after)-1].Source != store.SourceAPI ||
			after[len(after)-1].Decision == store.DecisionExecuted {
			t.Errorf("%s: audit = %+v", tc.name, after[len(after)-1])
		}
	}
	if status, _, body := servertest.Send(t, http.MethodGet, url, ownerAgent, ""); status != http.StatusForbidden {
		t.Errorf("agent list: %d %s, want 403", status, body)
	}

	status, _, body := servertest.Send(t, http.MethodPost, url, owner, good)
	var added store.DestinationFilter
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &added) != nil || added.ID == "" || added.CreatedBy != "olivia" {
		t.Fatalf("add: %d %s", status, body)
	}
	if ev := e.lastAudit(t); ev.Decision != store.DecisionExecuted || ev.Action != "governance.manage" || ev.ResourceType != "destination_filter" {
		t.Errorf("add audited as %+v", ev)
	}
	status, _, body = servertest.Send(t, http.MethodGet, url, owner, "")
	if status != http.StatusOK || !strings.Contains(body, added.ID) {
		t.Fatalf("list: %d %s", status, body)
	}
	if status, _, body := servertest.Send(t, http.MethodDelete, url+"/"+added.ID, ownerAgent, ""); status != http.StatusForbidden || count() != 1 {
		t.Fatalf("agent delete: %d %s", status, body)
	}
	if status, _, body := servertest.Send(t, http.MethodDelete, url+"/"+added.ID, owner, ""); status != http.StatusOK || count() != 0 {
		t.Fatalf("delete: %d %s", status, body)
	}
	if status, _, body := servertest.Send(t, http.MethodDelete, url+"/"+added.ID, owner, ""); status != http.StatusBadRequest || !strings.Contains(body, "no destination filter") {
		t.Fatalf("delete again: %d %s", status, body)
	}
}
