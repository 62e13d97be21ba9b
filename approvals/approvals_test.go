package approvals_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

type bundle struct {
	ctx    context.Context
	db     *sqlite.DB
	q      *approvals.Queue
	ws     store.Workspace
	owner  store.Principal // human owner, owns the agent
	admin  store.Principal // another human who may decide
	member store.Principal // a human without approvals.decide
	agent  store.Principal
}

func setup(t *testing.T, ttl time.Duration) *bundle {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ws, err := db.EnsureWorkspace(ctx, "acme", guardrails.BuiltInRoles())
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{ctx: ctx, db: db, ws: ws}
	b.owner = b.principal(t, "olivia", "owner", store.KindUser, "", "ss_aaaaaaaaaaa1")
	b.admin = b.principal(t, "adam", "admin", store.KindUser, "", "ss_aaaaaaaaaaa2")
	b.member = b.principal(t, "mia", "member", store.KindUser, "", "ss_aaaaaaaaaaa3")
	b.agent = b.principal(t, "bot", "member", store.KindAgent, "olivia", "ss_aaaaaaaaaaa4")
	rbac, err := guardrails.NewRBAC(ctx, db, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	b.q = approvals.NewQueue(db, rbac, ttl)
	return b
}

// principal creates a member with a key and returns it as the store sees it.
func (b *bundle) principal(t *testing.T, name, role, kind, owner, prefix string) store.Principal {
	t.Helper()
	email := ""
	if kind == store.KindUser {
		email = name + "@example.test"
	}
	k, err := b.db.CreateKey(b.ctx, store.NewKey{WorkspaceID: b.ws.ID, MemberName: name, Kind: kind, Role: role, OwnerName: owner,
		Email: email, Name: name, Prefix: prefix, Hash: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.db.Principal(b.ctx, k.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (b *bundle) request(t *testing.T, args string) store.Approval {
	t.Helper()
	d := guardrails.Decision{Effect: guardrails.EffectRequireApproval, Rules: []string{"ai-delete"}, Reason: "ai-delete: deletions need approval", PolicyVersion: "v1"}
	a, err := b.q.Request(b.ctx, b.agent, store.SourceAI, "delete_audience", json.RawMessage(args), d, map[string]any{"estimated_size": 12})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCanonicalArguments(t *testing.T) {
	t.Parallel()
	a, ha, err := approvals.Canonical(json.RawMessage(`{ "b": [1, 2.50, {"y":1,"x":2}], "a": "é<>" }`))
	if err != nil {
		t.Fatal(err)
	}
	b, hb, err := approvals.Canonical(json.RawMessage(`{"a":"é<>","b":[1,2.50,{"x":2,"y":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != `{"a":"é<>","b":[1,2.50,{"x":2,"y":1}]}` || string(a) != string(b) || ha != hb || len(ha) != 64 {
		t.Errorf("canonical forms differ: %s %s", a, b)
	}
	_, hc, _ := approvals.Canonical(json.RawMessage(`{"a":"é<>","b":[1,2.5,{"x":2,"y":1}]}`))
	if hc == ha {
		t.Error("numbers must be kept as written: 2.50 and 2.5 are different requests")
	}
	if c, _, err := approvals.Canonical(nil); err != nil || string(c) != "{}" {
		t.Errorf("no arguments: %s %v", c, err)
	}
	for _, bad := range []string{`[1]`, `"x"`, `{"a":1} {"b":2}`, `{"a":`} {
		if _, _, err := approvals.Canonical(json.RawMessage(bad)); err == nil {
			t.Errorf("Canonical(%s) accepted", bad)
		}
	}
}

// TestCanonicalArgumentForms shows the texts a reviewer sees and a hash
// covers for argument texts written differently: white space, escapes and
// invalid UTF-8 never make two requests of one call, and numbers are kept
// as written.
func TestCanonicalArgumentForms(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{" \n null \t", `{}`},
		{`{"z": {"b": 1, "a": [true, null]}, "a": ""}`, `{"a":"","z":{"a":[true,null],"b":1}}`},
		{`{"s": "\u00e9\u003c\/"}`, `{"s":"é</"}`},
		{"{\"s\": \"a\xffb\"}", "{\"s\":\"a\uFFFDb\"}"},
		{`{"n": [1e3, -0.0, 10.50, 12345678901234567890]}`, `{"n":[1e3,-0.0,10.50,12345678901234567890]}`},
	} {
		got, hash, err := approvals.Canonical(json.RawMessage(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("Canonical(%q) = %s, %v; want %s", c.in, got, err, c.want)
			continue
		}
		if _, again, _ := approvals.Canonical(got); again != hash {
			t.Errorf("Canonical(%q): the canonical text hashes differently when canonicalised again", c.in)
		}
	}
}

func TestRequestPinsTheCall(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	a := b.request(t, `{"audience": "aud_1"}`)
	got, err := b.db.GetApproval(b.ctx, b.ws.ID, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.ApprovalPending || got.Tool != "delete_audience" || string(got.Args) != `{"audience":"aud_1"}` ||
		got.RequesterID != b.agent.MemberID || got.RequesterOwnerID != b.owner.MemberID || got.PolicyVersion != "v1" ||
		got.Rules[0] != "ai-delete" || got.Facts["estimated_size"] != 12.0 || got.ExpiresAt.Sub(got.CreatedAt) != approvals.DefaultTTL {
		t.Errorf("stored approval = %+v", got)
	}
}

func TestWhoMayDecide(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	a := b.request(t, `{"audience": "aud_1"}`)
	cases := []struct {
		name   string
		who    store.Principal
		source string
	}{
		{"the requesting agent", b.agent, store.SourceUI},
		{"the owner behind the agent", b.owner, store.SourceUI},
		{"a member without approvals.decide", b.member, store.SourceUI},
		{"an admin through MCP", b.admin, store.SourceAI},
	}
	for _, tc := range cases {
		if _, err := b.q.Decide(b.ctx, tc.who, tc.source, a.ID, true, ""); !errors.Is(err, approvals.ErrForbidden) {
			t.Errorf("%s approved: %v", tc.name, err)
		}
	}
	if got, _ := b.db.GetApproval(b.ctx, b.ws.ID, a.ID); got.State != store.ApprovalPending {
		t.Fatalf("a refused decision changed the state to %s", got.State)
	}
	got, err := b.q.Decide(b.ctx, b.admin, store.SourceUI, a.ID, true, "fine")
	if err != nil || got.State != store.ApprovalApproved || got.DeciderID != b.admin.MemberID || got.Comment != "fine" || got.DecidedAt == nil {
		t.Fatalf("admin approval: %+v %v", got, err)
	}
	if _, err := b.q.Decide(b.ctx, b.admin, store.SourceUI, a.ID, false, ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("deciding twice: %v", err)
	}
}

func TestConcurrentApprovalsExecuteOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	a := b.request(t, `{"audience": "aud_1"}`)
	var decided, begun atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := b.q.Decide(b.ctx, b.admin, store.SourceUI, a.ID, true, ""); err == nil {
				decided.Add(1)
			} else if !errors.Is(err, store.ErrConflict) {
				t.Error(err)
			}
			cur, err := b.db.GetApproval(b.ctx, b.ws.ID, a.ID)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := b.q.Begin(b.ctx, cur); err == nil {
				begun.Add(1)
			} else if !errors.Is(err, store.ErrConflict) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if decided.Load() != 1 || begun.Load() != 1 {
		t.Fatalf("%d decisions and %d executions won, want exactly one each", decided.Load(), begun.Load())
	}
}

func TestCrashWhileExecutingIsNotRunAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	a := b.request(t, `{"audience": "aud_1"}`)
	a, err := b.q.Decide(b.ctx, b.admin, store.SourceUI, a.ID, true, "")
	if err != nil {
		t.Fatal(err)
	}
	if a, err = b.q.Begin(b.ctx, a); err != nil {
		t.Fatal(err)
	}
	// The process dies here. On restart, Recover resolves it.
	n, err := b.q.Recover(b.ctx, b.ws.ID)
	if err != nil || n != 1 {
		t.Fatalf("recover moved %d (%v)", n, err)
	}
	got, _ := b.db.GetApproval(b.ctx, b.ws.ID, a.ID)
	if got.State != store.ApprovalFailed || got.Outcome == "" || got.DoneAt == nil {
		t.Fatalf("after recovery: %+v", got)
	}
	if _, err := b.q.Begin(b.ctx, got); !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrConflict) {
		t.Errorf("a recovered approval could begin again: %v", err)
	}
}

func TestExpiredApprovalsCannotBeApproved(t *testing.T) {
	t.Parallel()
	b := setup(t, 50*time.Millisecond)
	a := b.request(t, `{"audience": "aud_1"}`)
	time.Sleep(80 * time.Millisecond)
	if _, err := b.q.Decide(b.ctx, b.admin, store.SourceUI, a.ID, true, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approving an expired request: %v", err)
	}
	got, _ := b.db.GetApproval(b.ctx, b.ws.ID, a.ID)
	if got.State != store.ApprovalExpired {
		t.Fatalf("state %s, want expired", got.State)
	}
	other := b.request(t, `{"audience": "aud_2"}`)
	time.Sleep(80 * time.Millisecond)
	if n, err := b.q.Expire(b.ctx, b.ws.ID); err != nil || n != 1 {
		t.Fatalf("expire moved %d (%v)", n, err)
	}
	if got, _ := b.db.GetApproval(b.ctx, b.ws.ID, other.ID); got.State != store.ApprovalExpired {
		t.Errorf("state %s after the sweep", got.State)
	}
}

func TestCancelOwnRequestsOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	a := b.request(t, `{"audience": "aud_1"}`)
	if _, err := b.q.Cancel(b.ctx, b.admin, a.ID); !errors.Is(err, approvals.ErrForbidden) {
		t.Errorf("someone else cancelled: %v", err)
	}
	got, err := b.q.Cancel(b.ctx, b.agent, a.ID)
	if err != nil || got.State != store.ApprovalCancelled {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	if _, err := b.q.Decide(b.ctx, b.admin, store.SourceUI, a.ID, true, ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a cancelled request was approved: %v", err)
	}
}

func TestBadTransitionsAndInput(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	a := b.request(t, `{"audience": "aud_1"}`)
	if _, err := b.db.TransitionApproval(b.ctx, b.ws.ID, a.ID, store.ApprovalChange{From: store.ApprovalPending, To: store.ApprovalSucceeded}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("pending -> succeeded: %v", err)
	}
	if _, err := b.db.TransitionApproval(b.ctx, b.ws.ID, "apr_nope", store.ApprovalChange{From: store.ApprovalPending, To: store.ApprovalApproved}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown approval: %v", err)
	}
	if _, err := b.q.Decide(b.ctx, b.admin, store.SourceUI, a.ID, true, string(make([]byte, 3000))); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("oversized comment: %v", err)
	}
	_, err := b.db.CreateApproval(b.ctx, store.Approval{WorkspaceID: b.ws.ID, Tool: "x", Args: json.RawMessage(`{}`), ArgsHash: "00", RequesterID: "m", RequesterKind: "agent", KeyPrefix: "p", ExpiresAt: time.Now().Add(time.Hour)})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a hash that does not match the arguments: %v", err)
	}
	list, err := b.db.ListApprovals(b.ctx, store.ApprovalFilter{WorkspaceID: b.ws.ID})
	if err != nil || len(list) != 1 || list[0].State != store.ApprovalPending {
		t.Errorf("bad input changed the queue: %+v %v", list, err)
	}
}
