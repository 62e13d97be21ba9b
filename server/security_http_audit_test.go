package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

// keyCheckLimit is how many failed key checks an address gets a minute
// before it is answered 429 without a check.
const keyCheckLimit = 10

// TestRefusedMCPRequestsLeaveOneEvent sends, with a valid agent key, the
// requests mcp-go refuses before any tool middleware runs. Each must be
// answered with a JSON-RPC error and leave exactly one audit event naming
// the caller and what was wrong.
func TestRefusedMCPRequestsLeaveOneEvent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		wantReason string
		// wantCode is the JSON-RPC error code of the answer; 0 for an
		// answer mcp-go gives as plain text.
		wantCode    int
		contentType string
	}{
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_tables"}}]`, "batch", -32600, ""},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":1,"method":"tools/list"}`, "jsonrpc", -32600, ""},
		{"missing jsonrpc", `{"id":1,"method":"tools/call","params":{"name":"list_tables","arguments":{}}}`, "jsonrpc", -32600, ""},
		{"jsonrpc as a number", `{"jsonrpc":2.0,"id":1,"method":"tools/list"}`, "jsonrpc", -32600, ""},
		{"non-string tool name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"tool":"delete_model"},"arguments":{"model":"customers"}}}`, "tool name", -32602, ""},
		{"numeric tool name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7,"arguments":{}}}`, "tool name", -32602, ""},
		{"params as an array", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["delete_model",{"model":"customers"}]}`, "params", -32602, ""},
		{"initialize with a malformed clientInfo", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":"me"}}`, "params", -32602, ""},
		{"non-string method", `{"jsonrpc":"2.0","id":1,"method":["tools/call"]}`, "method", -32600, ""},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"admin/export_keys","params":{}}`, "method", -32601, ""},
		{"unsupported method", `{"jsonrpc":"2.0","id":1,"method":"resources/list"}`, "method", -32601, ""},
		{"not an object", `"tools/list"`, "object", -32600, ""},
		{"not JSON content", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, "content type", 0, "text/plain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			key, k := e.key(t, "agent-1", "member", store.KindAgent, nil)
			// An initialized session, as a real client has: mcp-go answers
			// what it refuses itself only inside one.
			sid := session(t, e, key)
			before := len(e.audit(t))
			contentType := "application/json"
			if tc.contentType != "" {
				contentType = tc.contentType
			}
			status, _, body := postHeaders(t, e.url, key, tc.body, "Mcp-Session-Id", sid, "Content-Type", contentType)
			var answer struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if tc.wantCode == 0 {
				if status != http.StatusBadRequest {
					t.Errorf("answer %d %s, want 400", status, body)
				}
			} else if err := json.Unmarshal([]byte(body), &answer); err != nil || answer.Error.Code != tc.wantCode || answer.Error.Message == "" {
				t.Errorf("answer %d %s, want a JSON-RPC error with code %d", status, body, tc.wantCode)
			}
			evs := e.audit(t)[before:]
			if len(evs) != 1 {
				t.Fatalf("%d audit events for one refused request: %+v", len(evs), evs)
			}
			ev := evs[0]
			if ev.Decision != store.DecisionDenied || ev.KeyPrefix != k.Prefix || ev.ActorType != store.KindAgent ||
				ev.Action != "mcp.request" || !strings.Contains(ev.Reason, tc.wantReason) {
				t.Errorf("audit event = %+v, want a denial of the agent's request naming %q", ev, tc.wantReason)
			}
		})
	}
}

// TestOrdinaryMCPTrafficIsNotRefused checks the other side: the requests
// a real client sends pass the HTTP layer unchanged and add no refusal.
func TestOrdinaryMCPTrafficIsNotRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	c := e.client(t, key)
	if _, err := c.ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil {
		t.Fatal(err)
	}
	res := call(t, c, "list_models", nil)
	if res.IsError {
		t.Fatal(text(res))
	}
	sid := session(t, e, key)
	if status, _, body := postHeaders(t, e.url, key, `{"jsonrpc":"2.0","id":"p1","method":"ping"}`, "Mcp-Session-Id", sid); status != http.StatusOK || !strings.Contains(body, `"result"`) {
		t.Errorf("ping: %d %s", status, body)
	}
	for _, ev := range e.audit(t) {
		if ev.Action == "mcp.request" {
			t.Errorf("ordinary traffic was refused: %+v", ev)
		}
	}
}

// TestUnauthenticatedFloodIsCountedNotRecordedOneByOne floods /mcp from one
// address with 200 requests carrying no valid key. The trail grows by a
// bounded number of events, and the refusals it does not record one by one
// are counted in one event, so nothing goes unaccounted.
func TestUnauthenticatedFloodIsCountedNotRecordedOneByOne(t *testing.T) {
	t.Parallel()
	e := setup(t)
	good, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	keys := []string{"", "not-a-key", wrongSecret(good), "ss_aaaaaaaaaaaa_" + strings.Repeat("a", 52)}
	before := len(e.audit(t))
	statuses := map[int]int{}
	const flood = 200
	for i := range flood {
		status, _ := post(t, e.url, keys[i%len(keys)], `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tables","arguments":{}}}`)
		statuses[status]++
	}
	if statuses[http.StatusUnauthorized] != keyCheckLimit || statuses[http.StatusTooManyRequests] != flood-keyCheckLimit {
		t.Errorf("statuses %v, want %d of 401 then 429", statuses, keyCheckLimit)
	}
	if err := e.srv.FlushRequestAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := e.audit(t)[before:]
	if len(evs) > keyCheckLimit+1 {
		t.Errorf("%d audit events for one address's flood, want at most %d", len(evs), keyCheckLimit+1)
	}
	one, counted := 0, 0
	for _, ev := range evs {
		if ev.Decision != store.DecisionDenied || ev.ActorType != "unknown" {
			t.Errorf("audit of an unauthenticated request = %+v", ev)
		}
		if n, ok := refusedCount(ev); ok {
			counted += n
			if !strings.Contains(ev.Reason, "127.0.0.1") {
				t.Errorf("the counted event does not name the address: %q", ev.Reason)
			}
		} else {
			one++
		}
	}
	if one+counted != flood {
		t.Errorf("%d requests recorded one by one and %d counted, want %d in all", one, counted, flood)
	}
}

// refusedCount reads the count of an event that stands for several
// refused requests.
func refusedCount(ev store.AuditEvent) (int, bool) {
	var n int
	if _, err := fmt.Sscanf(ev.Result, "%d refused requests", &n); err != nil {
		return 0, false
	}
	return n, true
}

// TestFailedKeyChecksBeyondTheLimitGet429 exhausts an address's failed key
// checks: what it sends next is answered 429 without checking the key, so
// even a valid key that was not checked recently is refused, while an agent
// whose key was verified before keeps working and other addresses are not
// affected. A new minute lifts the limit, and the refusals of the minute
// before are counted in the trail.
func TestFailedKeyChecksBeyondTheLimitGet429(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// send makes one request after the limit was reached and returns
		// the status it got.
		send func(t *testing.T, e *env, f *flood) int
		want int
	}{
		{"wrong secret", func(t *testing.T, e *env, f *flood) int {
			s, _ := post(t, e.url, wrongSecret(f.verified), listTools)
			return s
		}, http.StatusTooManyRequests},
		{"missing key", func(t *testing.T, e *env, f *flood) int {
			s, _ := post(t, e.url, "", listTools)
			return s
		}, http.StatusTooManyRequests},
		{"valid key not checked recently", func(t *testing.T, e *env, f *flood) int {
			// Answered 429, not 200: its key was never checked.
			s, _ := post(t, e.url, f.unchecked, initialize)
			return s
		}, http.StatusTooManyRequests},
		{"valid key verified before the limit", func(t *testing.T, e *env, f *flood) int {
			s, _ := post(t, e.url, f.verified, initialize)
			return s
		}, http.StatusOK},
		{"wrong secret from another address", func(t *testing.T, e *env, f *flood) int {
			s, _ := postFrom(t, "127.0.0.2", e.url, wrongSecret(f.verified), listTools)
			return s
		}, http.StatusUnauthorized},
		{"wrong secret a minute later", func(t *testing.T, e *env, f *flood) int {
			f.advance(time.Minute + time.Second)
			s, _ := post(t, e.url, wrongSecret(f.verified), listTools)
			return s
		}, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			f := newFlood(t, e)
			status := tc.send(t, e, f)
			if status != tc.want {
				t.Errorf("status %d, want %d", status, tc.want)
			}
			if tc.want == http.StatusTooManyRequests {
				status, header, body := postHeaders(t, e.url, "", listTools)
				retry, err := strconv.Atoi(header.Get("Retry-After"))
				if status != http.StatusTooManyRequests || err != nil || retry < 1 || retry > 60 || !strings.Contains(body, "Too many failed key checks") {
					t.Errorf("429 answer: %d Retry-After %q %s", status, header.Get("Retry-After"), body)
				}
			}
			if tc.name == "wrong secret a minute later" {
				// The new minute's first request recorded the count of the
				// minute before, without a flush.
				counted := 0
				for _, ev := range e.audit(t) {
					if n, ok := refusedCount(ev); ok {
						counted += n
					}
				}
				if counted != f.refused {
					t.Errorf("%d refusals counted for the minute before, want %d", counted, f.refused)
				}
			}
		})
	}
}

const (
	listTools  = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
)

// flood is a server whose loopback address used up its failed key checks,
// on a clock the test moves.
type flood struct {
	verified, unchecked string
	refused             int

	mu  sync.Mutex
	now time.Time
}

func newFlood(t *testing.T, e *env) *flood {
	t.Helper()
	f := &flood{now: time.Now()}
	server.SetRequestAuditClock(e.srv, func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.now
	})
	f.verified, _ = e.key(t, "agent-1", "member", store.KindAgent, nil)
	f.unchecked, _ = e.key(t, "agent-2", "member", store.KindAgent, nil)
	if s, _ := post(t, e.url, f.verified, initialize); s != http.StatusOK {
		t.Fatalf("initialize with a valid key: %d", s)
	}
	for i := range keyCheckLimit {
		if s, _ := post(t, e.url, wrongSecret(f.verified), listTools); s != http.StatusUnauthorized {
			t.Fatalf("failed key check %d: %d, want 401", i+1, s)
		}
	}
	if s, _ := post(t, e.url, wrongSecret(f.verified), listTools); s != http.StatusTooManyRequests {
		t.Fatalf("failed key check %d: %d, want 429", keyCheckLimit+1, s)
	}
	f.refused = 1
	return f
}

func (f *flood) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// session initializes an MCP session over raw HTTP and returns its id.
func session(t *testing.T, e *env, key string) string {
	t.Helper()
	status, h, body := postHeaders(t, e.url, key, initialize)
	sid := h.Get("Mcp-Session-Id")
	if status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s", status, body)
	}
	if status, _, body := postHeaders(t, e.url, key, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "Mcp-Session-Id", sid); status != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", status, body)
	}
	return sid
}

// postHeaders is post with more request headers (name, value, ...), which
// also returns the response headers.
func postHeaders(t *testing.T, url, key, body string, headers ...string) (int, http.Header, string) {
	t.Helper()
	return servertest.Send(t, http.MethodPost, url, key, body, append([]string{"MCP-Protocol-Version", "2025-06-18"}, headers...)...)
}

// postFrom is post from another local address (Linux routes all of
// 127.0.0.0/8 to loopback).
func postFrom(t *testing.T, local, url, key, body string) (int, string) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
