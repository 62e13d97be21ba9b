package server_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// targetPolicies queue every agent read, change and deletion, and the
// creation of the model named pending_model; other creations run, so the
// test can make the objects it queues calls on.
const targetPolicies = `policies:
  - id: review-everything
    type: require_approval
    resources: ["*"]
    operations: [read, update, delete]
    sources: [AI]
    message: agent calls need a human here
  - id: review-pending-model
    type: require_approval
    resources: [model]
    operations: [create]
    sources: [AI]
    condition: has(args.name) && args.name == "pending_model"
    message: this model needs a human
`

// TestApprovalPageShowsTheObjectAsItIsNow: the detail page of a pending
// approval shows the object the call acts on, loaded by the tool from the
// approval's pinned arguments, and the fields the call would change.
func TestApprovalPageShowsTheObjectAsItIsNow(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, targetPolicies))
	ctx := context.Background()
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	c := e.client(t, agentKey)

	customers, err := e.db.GetModel(ctx, e.ws.ID, "customers")
	if err != nil {
		t.Fatal(err)
	}
	emea := e.audienceNamed(t, "High-value EMEA customers")
	syncs, err := e.db.ListSyncs(ctx, e.ws.ID)
	if err != nil || len(syncs) == 0 {
		t.Fatalf("demo syncs: %v %v", syncs, err)
	}
	const secret = "tok-never-on-the-page-5150"
	dst, err := e.db.CreateDestination(ctx, store.Destination{
		WorkspaceID: e.ws.ID, Name: "Partner webhook", Type: "webhook", Category: "crm", Environment: "sandbox",
		Config: map[string]any{"url": "https://partner.example/hook", "api_token": secret},
	})
	if err != nil {
		t.Fatal(err)
	}
	doomed := tableModel(t, c, "doomed_orders")
	vanishing := tableModel(t, c, "vanishing_orders")

	for _, tc := range []struct {
		name string
		tool string
		args map[string]any
		// after runs once the call is queued, before the page is read.
		after   func(t *testing.T)
		want    []string
		wantNot []string
	}{
		{
			name: "update_model: the model's current fields and what changes",
			tool: "update_model",
			args: map[string]any{"model": "customers", "description": "Customers, described anew", "primary_key": "customer_id"},
			want: []string{
				"model <code>" + customers.ID + "</code>",
				"The model as it is now",
				"&#34;description&#34;: &#34;" + customers.Description + "&#34;",
				"&#34;primary_key&#34;: &#34;customer_id&#34;",
				"&#34;table&#34;: &#34;" + customers.Table + "&#34;",
				"Fields the arguments change",
			},
			// The primary key is given but unchanged: not a change.
			wantNot: []string{"<code>primary_key</code></th>"},
		},
		{
			name: "delete_model: the model it deletes",
			tool: "delete_model",
			args: map[string]any{"model": "doomed_orders"},
			want: []string{
				"model <code>" + doomed.ID + "</code>", "Approving deletes this model.",
				"The model as it is now", "&#34;name&#34;: &#34;doomed_orders&#34;",
			},
		},
		{
			name: "update_audience: the audience with its definition as JSON",
			tool: "update_audience",
			args: map[string]any{"audience": emea.ID, "description": "EMEA customers worth a call"},
			want: []string{
				"audience <code>" + emea.ID + "</code>", "The audience as it is now",
				"&#34;workspace_id&#34;: &#34;" + e.ws.ID + "&#34;", "&#34;definition&#34;: {",
				"&#34;description&#34;: &#34;" + emea.Description + "&#34;",
			},
		},
		{
			name:    "get_destination: the destination without its secrets",
			tool:    "get_destination",
			args:    map[string]any{"destination": dst.ID},
			want:    []string{"destination <code>" + dst.ID + "</code>", "The call reads this destination; it changes nothing.", "Partner webhook"},
			wantNot: []string{secret},
		},
		{
			name: "get_sync: the sync",
			tool: "get_sync",
			args: map[string]any{"sync": syncs[0].ID},
			want: []string{"sync <code>" + syncs[0].ID + "</code>", "The sync as it is now", "&#34;mode&#34;: &#34;" + syncs[0].Mode + "&#34;"},
		},
		{
			name:    "create_model: nothing exists yet",
			tool:    "create_model",
			args:    map[string]any{"name": "pending_model", "table": "analytics.orders", "primary_key": "order_id"},
			want:    []string{"The call creates a new model: nothing exists yet to diff against."},
			wantNot: []string{"as it is now"},
		},
		{
			name: "delete_model: a model deleted since the request is gone",
			tool: "delete_model",
			args: map[string]any{"model": "vanishing_orders"},
			after: func(t *testing.T) {
				if err := e.db.DeleteModel(ctx, e.ws.ID, vanishing.ID); err != nil {
					t.Fatal(err)
				}
			},
			want:    []string{"There is no model &#34;" + vanishing.ID + "&#34; now. If approved, the call will fail or change nothing."},
			wantNot: []string{"as it is now"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := e.queued(t, c, tc.tool, tc.args)
			if tc.after != nil {
				tc.after(t)
			}
			w := newWeb(t, e.http.URL, nil)
			w.signIn(adminKey)
			_, body := w.get("/approvals/" + a.ID)
			for _, want := range tc.want {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			for _, not := range tc.wantNot {
				if strings.Contains(body, not) {
					t.Errorf("page shows %s", not)
				}
			}
			if t.Failed() {
				t.Logf("page:\n%s", body)
			}
		})
	}
}

// TestApprovalPageDiffOfUpdateModel: the diff of an update_model approval
// sets each field the call changes beside the model's current value.
func TestApprovalPageDiffOfUpdateModel(t *testing.T) {
	t.Parallel()
	e := setup(t, withPolicies(t, targetPolicies))
	agentKey, _ := e.key(t, "agent-1", "member", store.KindAgent, nil)
	adminKey, _ := e.key(t, "alice", "admin", store.KindUser, nil)
	c := e.client(t, agentKey)
	var created modelChange
	structured(t, call(t, c, "create_model", map[string]any{
		"name": "campaign_orders", "description": "Orders of the campaign", "table": "analytics.orders", "primary_key": "order_id",
	}), &created)
	m := created.Model
	a := e.queued(t, c, "update_model", map[string]any{"model": "campaign_orders", "name": "spring_orders", "description": "Orders of the spring campaign"})

	w := newWeb(t, e.http.URL, nil)
	w.signIn(adminKey)
	_, body := w.get("/approvals/" + a.ID)
	for _, row := range []struct{ field, now, after string }{
		{"name", m.Name, "spring_orders"},
		{"description", m.Description, "Orders of the spring campaign"},
	} {
		re := regexp.MustCompile(`<th scope="row"><code>` + row.field + `</code></th><td><del><code>&#34;` +
			regexp.QuoteMeta(row.now) + `&#34;</code></del></td><td><ins><code>&#34;` + regexp.QuoteMeta(row.after) + `&#34;</code></ins></td></tr>`)
		if !re.MatchString(body) {
			t.Errorf("the diff lacks %s: %q now, %q after", row.field, row.now, row.after)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}
}
