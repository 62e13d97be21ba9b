package guardrails

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/signalsmith/agent-server/store"
)

// rbacModel is Casbin's RBAC with domains: a role has permissions in a
// workspace (p), matched exactly (no keyMatch: its wildcards are regex
// quantifiers). The request subject is the caller's role, not the member:
// Casbin scans every policy on a cache miss, so decisions are cached per
// role and permission, which keeps misses rare however many members there
// are. Which role a member holds is checked against the loaded memberships
// before Casbin is asked (see Authorize).
const rbacModel = `
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj == p.obj && r.act == p.act && r.dom == p.dom && g(r.sub, p.sub, r.dom)
`

// Source is where RBAC data comes from; store.Store satisfies it.
type Source interface {
	Roles(ctx context.Context, workspaceID string) ([]store.Role, error)
	Members(ctx context.Context, workspaceID string) ([]store.Member, error)
	RBACVersion(ctx context.Context) (int64, error)
}

// Access is the outcome of an RBAC check.
type Access struct {
	Allowed bool
	// Reason says, for a denial, which permission the role lacks.
	Reason string
}

// RBAC authorizes principals with Casbin. Policies are per role, never per
// member; memberships (member -> role per workspace) are loaded beside them
// so a principal whose role disagrees with the loaded one is denied. It is
// safe for concurrent use.
type RBAC struct {
	src        Source
	workspaces []string

	mu       sync.RWMutex
	enforcer *casbin.SyncedCachedEnforcer
	version  int64
	roles    map[string]string // "workspace/member id" -> role, as loaded
}

// NewRBAC loads the roles and members of the given workspaces from src.
func NewRBAC(ctx context.Context, src Source, workspaceIDs ...string) (*RBAC, error) {
	r := &RBAC{src: src, workspaces: workspaceIDs}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload rebuilds the policy from the source. The new policy replaces the
// old one whole, with an empty decision cache, so no cached allow outlives
// a role or membership change.
func (r *RBAC) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked(ctx)
}

func (r *RBAC) reloadLocked(ctx context.Context) error {
	// Read the version first: data changed after it carries a newer
	// version, which triggers another reload.
	version, err := r.src.RBACVersion(ctx)
	if err != nil {
		return fmt.Errorf("load rbac: %w", err)
	}
	m, err := model.NewModelFromString(rbacModel)
	if err != nil {
		return fmt.Errorf("load rbac model: %w", err)
	}
	e, err := casbin.NewSyncedCachedEnforcer(m)
	if err != nil {
		return fmt.Errorf("load rbac: %w", err)
	}
	e.EnableAutoSave(false)
	var policies [][]string
	roles := make(map[string]string)
	for _, ws := range r.workspaces {
		rs, err := r.src.Roles(ctx, ws)
		if err != nil {
			return fmt.Errorf("load roles of %s: %w", ws, err)
		}
		for _, role := range rs {
			for _, perm := range role.Permissions {
				obj, act, ok := strings.Cut(perm, ".")
				if !ok || !IsPermission(perm) {
					return fmt.Errorf("role %q of %s has unknown permission %q", role.Name, ws, perm)
				}
				policies = append(policies, []string{roleSubject(role.Name), ws, obj, act})
			}
		}
		ms, err := r.src.Members(ctx, ws)
		if err != nil {
			return fmt.Errorf("load members of %s: %w", ws, err)
		}
		for _, mem := range ms {
			roles[ws+"/"+mem.ID] = mem.Role
		}
	}
	if len(policies) > 0 {
		if _, err := e.AddPoliciesEx(policies); err != nil {
			return fmt.Errorf("load role policies: %w", err)
		}
	}
	e.InvalidateCache()
	r.enforcer, r.version, r.roles = e, version, roles
	return nil
}

// fresh returns the enforcer and loaded roles, reloading first when p was
// read from a newer RBAC version than the one loaded.
func (r *RBAC) fresh(ctx context.Context, p store.Principal) (*casbin.SyncedCachedEnforcer, map[string]string, error) {
	r.mu.RLock()
	e, version, roles := r.enforcer, r.version, r.roles
	r.mu.RUnlock()
	if p.RBACVersion <= version {
		return e, roles, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.RBACVersion > r.version {
		if err := r.reloadLocked(ctx); err != nil {
			return nil, nil, err
		}
	}
	return r.enforcer, r.roles, nil
}

// Authorize decides whether p holds permission. An unknown permission or a
// failure to load the policy is an error; callers deny on error.
func (r *RBAC) Authorize(ctx context.Context, p store.Principal, permission string) (Access, error) {
	if !IsPermission(permission) {
		return Access{}, fmt.Errorf("authorize: unknown permission %q", permission)
	}
	e, roles, err := r.fresh(ctx, p)
	if err != nil {
		return Access{}, err
	}
	if roles[p.WorkspaceID+"/"+p.MemberID] != p.Role {
		// The principal and the loaded policy disagree on the role: one of
		// them is stale. Deny rather than guess.
		return Access{Reason: fmt.Sprintf("the role of %q changed during the call; retry", p.MemberName)}, nil
	}
	obj, act, _ := strings.Cut(permission, ".")
	ok, err := e.Enforce(roleSubject(p.Role), p.WorkspaceID, obj, act)
	if err != nil {
		return Access{}, fmt.Errorf("authorize %s: %w", permission, err)
	}
	if !ok {
		return Access{Reason: fmt.Sprintf("role %q lacks permission %q", p.Role, permission)}, nil
	}
	return Access{Allowed: true}, nil
}

// Permitted returns the set of permissions p holds.
func (r *RBAC) Permitted(ctx context.Context, p store.Principal) (map[string]bool, error) {
	out := make(map[string]bool)
	for _, perm := range allPermissions {
		d, err := r.Authorize(ctx, p, perm)
		if err != nil {
			return nil, err
		}
		if d.Allowed {
			out[perm] = true
		}
	}
	return out, nil
}

func roleSubject(role string) string { return "role:" + role }
