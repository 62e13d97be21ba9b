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
	"admin": {
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

// wantCategories is the number of actions per category in section 5.
var wantCategories = map[string]int{
	"sources": 5, "models": 4, "destinations": 5, "syncs": 5, "audiences": 4, "traits": 4,
	"identity_graphs": 2, "journeys": 2, "events": 2, "governance": 2, "approvals": 2,
	"audit": 2, "members": 2, "workspace": 1,
}

func wantAdmin() []string { return slices.Clone(wantRoles["admin"]) }

func TestPermissionTable(t *testing.T) {
	t.Parallel()
	all := AllPermissions()
	if len(all) != 42 {
		t.Fatalf("%d permissions, want 42", len(all))
	}
	if !slices.Equal(sorted(all), sorted(wantRoles["owner"])) {
		t.Fatalf("AllPermissions:\n got %v\nwant %v", sorted(all), sorted(wantRoles["owner"]))
	}
	categories := map[string]int{}
	seen := map[string]bool{}
	for _, p := range all {
		cat, act, ok := strings.Cut(p, ".")
		if !ok || act == "" || strings.Contains(act, ".") || seen[p] || !IsPermission(p) {
			t.Errorf("bad or duplicate permission %q", p)
		}
		seen[p] = true
		categories[cat]++
	}
	if len(categories) != 14 {
		t.Errorf("%d categories, want 14", len(categories))
	}
	for cat, n := range wantCategories {
		if categories[cat] != n {
			t.Errorf("category %s has %d actions, want %d", cat, categories[cat], n)
		}
	}
	// AllPermissions returns a copy: callers cannot change the table.
	all[0] = "workspace.everything"
	if IsPermission("workspace.everything") || AllPermissions()[0] == "workspace.everything" {
		t.Error("changing AllPermissions' result changed the table")
	}
	for _, bad := range []string{"", ".", "models", "models.", ".read", "models.*", "*", "models.read ", " models.read", "Models.read", "models.READ", "workspace.read", "models.read.x", "models:read"} {
		if IsPermission(bad) {
			t.Errorf("IsPermission(%q) = true", bad)
		}
	}
}

func TestBuiltInRoles(t *testing.T) {
	t.Parallel()
	roles := BuiltInRoles()
	got := map[string][]string{}
	for _, r := range roles {
		if !r.BuiltIn || r.WorkspaceID != "" {
			t.Errorf("role %s: BuiltIn %v, workspace %q", r.Name, r.BuiltIn, r.WorkspaceID)
		}
		if _, dup := got[r.Name]; dup {
			t.Errorf("role %s twice", r.Name)
		}
		seen := map[string]bool{}
		for _, p := range r.Permissions {
			if seen[p] || !IsPermission(p) {
				t.Errorf("role %s: bad or duplicate permission %q", r.Name, p)
			}
			seen[p] = true
		}
		got[r.Name] = r.Permissions
	}
	if len(roles) != 3 {
		t.Errorf("%d built-in roles, want owner, admin and member", len(roles))
	}
	for name, want := range wantRoles {
		if g, w := sorted(got[name]), sorted(want); !slices.Equal(g, w) {
			t.Errorf("role %s:\n got %v\nwant %v", name, g, w)
		}
	}

	// The rules of section 5 in words, checked on the result too.
	admin, owner := got["admin"], got["owner"]
	if len(owner) != 42 {
		t.Errorf("owner has %d permissions, want all 42", len(owner))
	}
	if len(admin) != 41 || slices.Contains(admin, "workspace.manage") {
		t.Errorf("admin should lack exactly workspace.manage: %v", admin)
	}
	full := []string{"models", "syncs", "audiences", "traits"}
	none := []string{"governance", "audit", "workspace"}
	for _, p := range AllPermissions() {
		cat, act, _ := strings.Cut(p, ".")
		want := slices.Contains(full, cat) || act == "read" && !slices.Contains(none, cat)
		if slices.Contains(got["member"], p) != want {
			t.Errorf("member %s: held %v, want %v", p, !want, want)
		}
	}

	// BuiltInRoles returns fresh slices.
	roles[0].Permissions[0] = "workspace.everything"
	if BuiltInRoles()[0].Permissions[0] == "workspace.everything" {
		t.Error("changing BuiltInRoles' result changed the table")
	}
}
