package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

// destSecret is a webhook secret planted through the API; it must never
// show anywhere but sealed.
const destSecret = "whsec_api-planted-7c1d93ab5e"

// withMasterKey gives the server a master key and a data directory for
// file destinations, both in dir.
func withMasterKey(t *testing.T, dir string) func(*server.Config) {
	t.Helper()
	if _, err := destinations.LoadKeyring(func(string) string { return "" }, dir, true); err != nil {
		t.Fatal(err)
	}
	return func(c *server.Config) {
		c.MasterKeyFunc, c.DataDir = destinations.Keys(func(string) string { return "" }, dir), dir
	}
}

// signedReceiver counts the deliveries signed with destSecret.
func signedReceiver(t *testing.T) (*httptest.Server, *atomic.Int32, *atomic.Int32) {
	t.Helper()
	var good, bad atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if destinations.Sign([]byte(destSecret), r.Header.Get(destinations.HeaderTimestamp), body) == r.Header.Get(destinations.HeaderSignature) {
			good.Add(1)
			return
		}
		bad.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(hs.Close)
	return hs, &good, &bad
}

func (e *env) destinationCount(t *testing.T) int {
	t.Helper()
	all, err := e.db.ListDestinations(t.Context(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

func TestDestinationsAPI(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dataDir, "exports"), 0o700); err != nil {
		t.Fatal(err)
	}
	e := setup(t, withMasterKey(t, dataDir))
	owner, _ := e.key(t, "olivia", "owner", store.KindUser, nil)
	member, _ := e.key(t, "mia", "member", store.KindUser, nil)
	ownerAgent, _ := e.key(t, "bot", "owner", store.KindAgent, nil)
	hs, good, bad := signedReceiver(t)
	api := e.http.URL + "/api/v1/destinations"
	hook := func(name, url, secret string) string {
		return fmt.Sprintf(`{"name":%q,"type":"webhook","category":"crm","environment":"production","url":%q,"secret":%q,"batch_size":100}`,
			name, url, secret)
	}

	status, _, body := servertest.Send(t, http.MethodPost, api, owner, hook("CRM receiver", hs.URL, destSecret))
	var created store.Destination
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil || !created.HasCredentials {
		t.Fatalf("create = %d %s", status, body)
	}

	// Refused: nothing is written, each refusal is audited, and no answer
	// repeats the secret.
	before := e.destinationCount(t)
	for _, tc := range []struct {
		name, key, body, want string
		status                int
	}{
		{"agent key with the owner role", ownerAgent, hook("x", hs.URL, destSecret), "agent keys may only read", http.StatusForbidden},
		{"member without destinations.create", member, hook("x", hs.URL, destSecret), "destinations.create", http.StatusForbidden},
		{"unknown type", owner, `{"name":"x","type":"ftp","category":"crm","environment":"sandbox"}`, `type \"ftp\" is not webhook or file`, http.StatusBadRequest},
		{"unknown category", owner, `{"name":"x","type":"webhook","category":"sales","environment":"sandbox","url":"https://a.example","secret":"` + destSecret + `"}`, `category \"sales\"`, http.StatusBadRequest},
		{"unknown environment", owner, `{"name":"x","type":"webhook","category":"crm","environment":"prod","url":"https://a.example","secret":"` + destSecret + `"}`, `environment \"prod\"`, http.StatusBadRequest},
		{"http off loopback", owner, hook("x", "http://crm.example.com/h", destSecret), "must use https", http.StatusBadRequest},
		{"missing secret", owner, `{"name":"x","type":"webhook","category":"crm","environment":"sandbox","url":"https://a.example"}`, "needs a signing secret", http.StatusBadRequest},
		{"missing folder", owner, `{"name":"x","type":"file","category":"crm","environment":"sandbox","dir":"nope"}`, "does not exist", http.StatusBadRequest},
		{"duplicate name", owner, hook("CRM receiver", hs.URL, destSecret), "exists already", http.StatusConflict},
		{"unknown field", owner, `{"name":"x","password":"` + destSecret + `"}`, "the body must be", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(e.audit(t))
			status, _, body := servertest.Send(t, http.MethodPost, api, tc.key, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) || strings.Contains(body, destSecret) {
				t.Fatalf("POST = %d %s; want %d saying %q", status, body, tc.status, tc.want)
			}
			if got := e.destinationCount(t); got != before {
				t.Fatalf("%d destinations after a refused create, want %d", got, before)
			}
			evs := e.audit(t)
			if len(evs) != n+1 || evs[len(evs)-1].Decision == store.DecisionExecuted || evs[len(evs)-1].Source != store.SourceAPI {
				t.Fatalf("audit after a refusal: %d new events, last %+v", len(evs)-n, evs[len(evs)-1])
			}
		})
	}

	// A destination of another workspace is not there for this caller.
	other, err := e.db.EnsureWorkspace(t.Context(), "other", guardrails.BuiltInRoles())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := e.db.CreateDestination(t.Context(), store.Destination{WorkspaceID: other.ID, Name: "theirs", Type: "file",
		Category: "crm", Environment: "sandbox", Config: map[string]any{"dir": "exports"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/" + foreign.ID, ""},
		{http.MethodPatch, "/" + foreign.ID, `{"environment":"production"}`},
		{http.MethodDelete, "/" + foreign.ID, ""},
		{http.MethodPost, "/" + foreign.ID + "/test", ""},
	} {
		status, _, body := servertest.Send(t, tc.method, api+tc.path, owner, tc.body)
		if status != http.StatusNotFound || strings.Contains(body, "theirs") {
			t.Errorf("%s %s = %d %s; want 404", tc.method, tc.path, status, body)
		}
	}
	if got, err := e.db.GetDestination(t.Context(), other.ID, foreign.ID); err != nil || got.Environment != "sandbox" {
		t.Fatalf("the other workspace's destination changed: %+v, %v", got, err)
	}

	// Update keeps the sealed secret; test sends it a signed empty batch.
	status, _, body = servertest.Send(t, http.MethodPatch, api+"/"+created.ID, owner, `{"environment":"sandbox","timeout":"3s"}`)
	if status != http.StatusOK || !strings.Contains(body, `"environment":"sandbox"`) {
		t.Fatalf("PATCH = %d %s", status, body)
	}
	status, _, body = servertest.Send(t, http.MethodPost, api+"/"+created.ID+"/test", owner, "")
	if status != http.StatusOK || good.Load() != 1 || bad.Load() != 0 {
		t.Fatalf("test = %d %s; receiver saw %d signed, %d badly signed", status, body, good.Load(), bad.Load())
	}
	if status, _, body = servertest.Send(t, http.MethodDelete, api+"/"+created.ID, ownerAgent, ""); status != http.StatusForbidden {
		t.Fatalf("agent DELETE = %d %s", status, body)
	}

	// Agents read destinations, through the API and their tools, without
	// ever seeing the secret.
	status, _, body = servertest.Send(t, http.MethodGet, api, ownerAgent, "")
	if status != http.StatusOK || !strings.Contains(body, created.ID) {
		t.Fatalf("agent GET = %d %s", status, body)
	}
	agent := e.client(t, ownerAgent)
	results := body
	for _, c := range []struct {
		tool string
		args map[string]any
	}{{"list_destinations", map[string]any{}}, {"get_destination", map[string]any{"destination": created.ID}}} {
		res := servertest.Call(t, agent, c.tool, c.args)
		raw, _ := json.Marshal(res)
		if res.IsError || !bytes.Contains(raw, []byte(created.ID)) {
			t.Fatalf("%s = %s", c.tool, raw)
		}
		results += string(raw)
	}

	status, _, _ = servertest.Send(t, http.MethodDelete, api+"/"+created.ID, owner, "")
	if status != http.StatusOK {
		t.Fatalf("DELETE = %d", status)
	}
	if _, err := e.db.GetDestination(t.Context(), e.ws.ID, created.ID); err == nil {
		t.Fatal("the destination is still there")
	}

	// The secret is nowhere: answers, tool results, logs, audit records,
	// the files of the data directory.
	evs, _ := json.Marshal(e.audit(t))
	for what, text := range map[string]string{"answers and tool results": results, "logs": e.logs.String(), "audit": string(evs)} {
		if strings.Contains(text, destSecret) {
			t.Errorf("the %s hold the secret", what)
		}
	}
	for _, root := range []string{e.dir, dataDir} {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(destSecret)) {
					t.Errorf("%s holds the secret in clear", path)
				}
			}
			return nil
		})
	}
	for _, action := range []string{"destinations.create", "destinations.update", "destinations.test", "destinations.delete"} {
		if !strings.Contains(string(evs), `"action":"`+action+`"`) {
			t.Errorf("no %s event", action)
		}
	}
}

func TestDestinationsAPIWithoutMasterKey(t *testing.T) {
	t.Parallel()
	e := setup(t)
	owner, _ := e.key(t, "olivia", "owner", store.KindUser, nil)
	before := e.destinationCount(t)
	status, _, body := servertest.Send(t, http.MethodPost, e.http.URL+"/api/v1/destinations", owner,
		`{"name":"x","type":"webhook","category":"crm","environment":"sandbox","url":"https://a.example","secret":"`+destSecret+`"}`)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, destinations.KeyEnv) || strings.Contains(body, destSecret) {
		t.Fatalf("POST without a master key = %d %s", status, body)
	}
	if e.destinationCount(t) != before {
		t.Fatal("a destination was written")
	}
}
