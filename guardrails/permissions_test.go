package guardrails

import (
	"slices"
	"strings"
	"testing"
)

// wantRoles is DESIGN.md section 5 written out by hand: the executable
// form of the table. It is deliberately not derived from permissions.go.
var wantRoles = map[string][]string{
	"owner": {
		"sources.read", "sources.create", "sources.update", "sources.delete", "sources.test",
		"models.read", "models.create", "models.update", "models.delete",
		"destinations.read", "destinations.create", "destinations.update", "destinations.delete", "destinations.test",
		"syncs.read", "syncs.create", "syncs.update", "syncs.delete", "syncs.trigger",
		"audiences.read", "audiences.create", "audiences.update", "audiences.delete",
		"traits.read", "traits.create", "traits.update", "traits.delete",
		"identity_graphs.read", "identity_graphs.manage",
		"journeys.read", "journeys.manage",
		"events.read", "events.manage",
		"governance.read", "governance.manage",
		"approvals.read", "approvals.decide",
		"audit.read", "audit.export",
		"members.read", "members.manage",
		"workspace.manage",
	},
	"member": {
		"sources.read",
		"models.read", "models.create", "models.update", "models.delete",
		"destinations.read",
		"syncs.read", "syncs.create", "syncs.update", "syncs.delete", "syncs.trigger",
		"audiences.read", "audiences.create", "audiences.update", "audiences.delete",
		"traits.read", "traits.create", "traits.update", "traits.delete",
		"identity_graphs.read", "journeys.read", "events.read",
		"approvals.read", "members.read",
	},
}

func TestPermissionTable(t *testing.T) {
	t.Parallel()
	all := AllPermissions()
	if len(all) != 42 {
		t.Fatalf("%d permissions, want 42", len(all))
	}
	categories := map[string]bool{}
	seen := map[string]bool{}
	for _, p := range all {
		cat, _, ok := strings.Cut(p, ".")
		if !ok || seen[p] || !IsPermission(p) {
			t.Errorf("bad or duplicate permission %q", p)
		}
		seen[p] = true
		categories[cat] = true
	}
	if len(categories) != 14 {
		t.Errorf("%d categories, want 14", len(categories))
	}
	for _, bad := range []string{"", "models", "models.*", "models.read ", "Models.read", "workspace.read"} {
		if IsPermission(bad) {
			t.Errorf("IsPermission(%q) = true", bad)
		}
	}
}

func TestBuiltInRoles(t *testing.T) {
	t.Parallel()
	got := map[string][]string{}
	for _, r := range BuiltInRoles() {
		if !r.BuiltIn || r.WorkspaceID != "" {
			t.Errorf("role %s: BuiltIn %v, workspace %q", r.Name, r.BuiltIn, r.WorkspaceID)
		}
		got[r.Name] = r.Permissions
	}
	wantAdmin := slices.DeleteFunc(slices.Clone(wantRoles["owner"]), func(p string) bool { return p == "workspace.manage" })
	for name, want := range map[string][]string{"owner": wantRoles["owner"], "admin": wantAdmin, "member": wantRoles["member"]} {
		g := slices.Sorted(slices.Values(got[name]))
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(g, w) {
			t.Errorf("role %s:\n got %v\nwant %v", name, g, w)
		}
	}
	if len(got) != 3 {
		t.Errorf("built-in roles: %v", got)
	}
}
