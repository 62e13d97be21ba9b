package guardrails

import (
	"slices"

	"github.com/signalsmith/agent-server/store"
)

// Built-in role names.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// category is one row of the permission table of DESIGN.md section 5: its
// actions, and the actions the member role gets (owner gets all; admin gets
// all but workspace.manage).
type category struct {
	name    string
	actions []string
	member  []string
}

// table is the one place the permissions live. Everything else (the Casbin
// policy of the built-in roles, permission checks) derives from it.
var table = []category{
	{"sources", []string{"read", "create", "update", "delete", "test"}, []string{"read"}},
	{"models", []string{"read", "create", "update", "delete"}, []string{"read", "create", "update", "delete"}},
	{"destinations", []string{"read", "create", "update", "delete", "test"}, []string{"read"}},
	{"syncs", []string{"read", "create", "update", "delete", "trigger"}, []string{"read", "create", "update", "delete", "trigger"}},
	{"audiences", []string{"read", "create", "update", "delete"}, []string{"read", "create", "update", "delete"}},
	{"traits", []string{"read", "create", "update", "delete"}, []string{"read", "create", "update", "delete"}},
	{"identity_graphs", []string{"read", "manage"}, []string{"read"}},
	{"journeys", []string{"read", "manage"}, []string{"read"}},
	{"events", []string{"read", "manage"}, []string{"read"}},
	{"governance", []string{"read", "manage"}, nil},
	{"approvals", []string{"read", "decide"}, []string{"read"}},
	{"audit", []string{"read", "export"}, nil},
	{"members", []string{"read", "manage"}, []string{"read"}},
	{"workspace", []string{"manage"}, nil},
}

// adminWithout is the one permission admin lacks.
const adminWithout = "workspace.manage"

var (
	allPermissions = func() []string {
		var out []string
		for _, c := range table {
			for _, a := range c.actions {
				out = append(out, c.name+"."+a)
			}
		}
		return out
	}()
	permissionSet = func() map[string]bool {
		m := make(map[string]bool, len(allPermissions))
		for _, p := range allPermissions {
			m[p] = true
		}
		return m
	}()
)

// AllPermissions returns the 42 permissions, "{category}.{action}", in the
// order of DESIGN.md section 5.
func AllPermissions() []string { return slices.Clone(allPermissions) }

// IsPermission reports whether s is one of the 42 permissions.
func IsPermission(s string) bool { return permissionSet[s] }

// BuiltInRoles returns the owner, admin and member roles with their
// permissions. WorkspaceID is empty: the store fills it in.
func BuiltInRoles() []store.Role {
	var member []string
	for _, c := range table {
		for _, a := range c.member {
			member = append(member, c.name+"."+a)
		}
	}
	admin := slices.DeleteFunc(AllPermissions(), func(p string) bool { return p == adminWithout })
	return []store.Role{
		{Name: RoleOwner, BuiltIn: true, Permissions: AllPermissions()},
		{Name: RoleAdmin, BuiltIn: true, Permissions: admin},
		{Name: RoleMember, BuiltIn: true, Permissions: member},
	}
}
