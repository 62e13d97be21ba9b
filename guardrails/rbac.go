package guardrails

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/signalsmith/agent-server/store"
)

// rbacModel is Casbin's RBAC with domains, one domain per workspace:
// p rules give a role a permission in a workspace, g rules give a member a
// role in a workspace. Objects and actions match exactly (no keyMatch: its
// wildcards are regex quantifiers), cheap comparisons first.
//
// Authorize asks Casbin about the caller's role, not the member: the
// membership g rule is checked first, then the request (role, workspace,
// category, action) is enforced. Casbin caches decisions by request and
// scans every p rule on a miss, so a role subject keeps the cache to
// roles x permissions entries however many members there are. Asking about
// the member subject gives the same answer through g (a test holds this).
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

// Subjects carry a kind prefix so a member id can never be a role subject:
// a member whose id were "role:member" and who held owner would otherwise
// be a g rule role:member -> role:owner, and every member would inherit
// owner's permissions (a test holds this).
func roleSubject(role string) string { return "role:" + role }
func memberSubject(id string) string { return "member:" + id }
func roleOf(subject string) string   { return strings.TrimPrefix(subject, "role:") }

// permissionParts splits a known permission into Casbin's object (the
// category) and action.
func permissionParts(p string) (obj, act string) {
	obj, act, _ = strings.Cut(p, ".")
	return obj, act
}

// Source is where RBAC data comes from: the read side of store.RBAC (roles,
// members and the version that says when to reload), which the store
// satisfies; tests use an in-memory one.
type Source interface {
	Roles(ctx context.Context, workspaceID string) ([]store.Role, error)
	Members(ctx context.Context, workspaceID string) ([]store.Member, error)
	RBACVersion(ctx context.Context) (int64, error)
}

var _ Source = store.RBAC(nil)

// Access is the outcome of an RBAC check.
type Access struct {
	Allowed bool
	// Reason says, for a denial, why: which permission the role lacks, or
	// that the caller has no role (or another role) in the workspace.
	Reason string
}

// RBAC authorizes principals with Casbin. Policies are per role, never per
// member. It is safe for concurrent use.
//
// The workspaces it knows are the ones given to NewRBAC; a principal of any
// other workspace has no role and is denied everything. The policy is
// reloaded whole, from the source, whenever a principal carries a newer
// RBACVersion than the loaded one, so a role or membership change applies
// to the first call that sees it.
type RBAC struct {
	src        Source
	workspaces []string

	// reload serializes loads; cur is swapped whole after a load, so a
	// caller that needs no reload never waits for one.
	reload sync.Mutex
	cur    atomic.Pointer[policy]
}

// policy is one load of the source: an enforcer holding the p and g rules,
// with an empty decision cache, and the source version read before them.
type policy struct {
	enforcer *casbin.SyncedCachedEnforcer
	version  int64
}

// NewRBAC loads the roles and members of the given workspaces from src. It
// returns an error when src fails or a role names an unknown permission.
func NewRBAC(ctx context.Context, src Source, workspaceIDs ...string) (*RBAC, error) {
	r := &RBAC{src: src, workspaces: append([]string(nil), workspaceIDs...)}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload rebuilds the policy from the source. The new policy replaces the
// old one whole, with an empty decision cache, so no cached allow outlives
// a role or membership change. On error the old policy stays.
func (r *RBAC) Reload(ctx context.Context) error {
	r.reload.Lock()
	defer r.reload.Unlock()
	pol, err := r.load(ctx)
	if err != nil {
		return err
	}
	r.cur.Store(pol)
	return nil
}

func (r *RBAC) load(ctx context.Context) (*policy, error) {
	// Read the version first: a change made while the rules are read
	// carries a newer version, which makes the next call reload again.
	version, err := r.src.RBACVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("load rbac version: %w", err)
	}
	m, err := model.NewModelFromString(rbacModel)
	if err != nil {
		return nil, fmt.Errorf("load rbac model: %w", err)
	}
	e, err := casbin.NewSyncedCachedEnforcer(m)
	if err != nil {
		return nil, fmt.Errorf("load rbac enforcer: %w", err)
	}
	e.EnableAutoSave(false)
	var rules, groupings [][]string
	for _, ws := range r.workspaces {
		roles, err := r.src.Roles(ctx, ws)
		if err != nil {
			return nil, fmt.Errorf("load roles of %s: %w", ws, err)
		}
		for _, role := range roles {
			for _, perm := range role.Permissions {
				if !IsPermission(perm) {
					// Refuse the load rather than guess: the old policy
					// stays, and callers newer than it are denied.
					return nil, fmt.Errorf("load role %q of %s: unknown permission %q", role.Name, ws, perm)
				}
				obj, act := permissionParts(perm)
				rules = append(rules, []string{roleSubject(role.Name), ws, obj, act})
			}
		}
		members, err := r.src.Members(ctx, ws)
		if err != nil {
			return nil, fmt.Errorf("load members of %s: %w", ws, err)
		}
		for _, mem := range members {
			groupings = append(groupings, []string{memberSubject(mem.ID), roleSubject(mem.Role), ws})
		}
	}
	if len(rules) > 0 {
		if _, err := e.AddPoliciesEx(rules); err != nil {
			return nil, fmt.Errorf("load role permissions: %w", err)
		}
	}
	if len(groupings) > 0 {
		if _, err := e.AddGroupingPoliciesEx(groupings); err != nil {
			return nil, fmt.Errorf("load memberships: %w", err)
		}
	}
	// Nothing can be cached yet; clear anyway, so the rule "invalidate on
	// every load" holds whatever the enforcer did while rules were added.
	if err := e.InvalidateCache(); err != nil {
		return nil, fmt.Errorf("load rbac: clear cache: %w", err)
	}
	return &policy{enforcer: e, version: version}, nil
}

// fresh returns a policy at least as new as p: when p was read from a newer
// RBAC version than the loaded one, it reloads first (one caller loads,
// concurrent ones wait and use its result). A source still behind p after
// the reload is an error, so a decision is never made on older rules than
// the principal.
func (r *RBAC) fresh(ctx context.Context, p store.Principal) (*policy, error) {
	if pol := r.cur.Load(); p.RBACVersion <= pol.version {
		return pol, nil
	}
	r.reload.Lock()
	defer r.reload.Unlock()
	if pol := r.cur.Load(); p.RBACVersion <= pol.version {
		return pol, nil
	}
	pol, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	r.cur.Store(pol)
	if p.RBACVersion > pol.version {
		return nil, fmt.Errorf("rbac source at version %d is behind the caller's %d", pol.version, p.RBACVersion)
	}
	return pol, nil
}

// Authorize decides whether p holds permission in p.WorkspaceID: p's role
// must hold it and, for an agent, so must its human's role. It
// returns an error, and no allow, for an unknown permission or a policy
// that cannot be loaded; callers deny on error.
func (r *RBAC) Authorize(ctx context.Context, p store.Principal, permission string) (Access, error) {
	if !IsPermission(permission) {
		return Access{}, fmt.Errorf("authorize: unknown permission %q", permission)
	}
	pol, err := r.fresh(ctx, p)
	if err != nil {
		return Access{}, fmt.Errorf("authorize %s: %w", permission, err)
	}
	if acc, err := pol.member(p); err != nil || !acc.Allowed {
		return acc, err
	}
	human, acc, err := pol.human(p)
	if err != nil || !acc.Allowed {
		return acc, err
	}
	return pol.decide(p, human, permission)
}

// Permitted returns the set of permissions p holds, decided on one policy
// load, for listing the tools a caller may see. A caller without its role
// in the workspace holds none. Errors are those of Authorize.
func (r *RBAC) Permitted(ctx context.Context, p store.Principal) (map[string]bool, error) {
	pol, err := r.fresh(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("permitted: %w", err)
	}
	out := make(map[string]bool)
	if acc, err := pol.member(p); err != nil || !acc.Allowed {
		return out, err
	}
	human, acc, err := pol.human(p)
	if err != nil || !acc.Allowed {
		return out, err
	}
	for _, perm := range allPermissions {
		acc, err := pol.decide(p, human, perm)
		if err != nil {
			return nil, err
		}
		if acc.Allowed {
			out[perm] = true
		}
	}
	return out, nil
}

// member checks that the loaded memberships give p the role p claims. A
// disagreement means one of them is stale (a role changed between reading
// the principal and loading the policy): deny rather than guess.
func (pol *policy) member(p store.Principal) (Access, error) {
	ok, err := pol.enforcer.HasGroupingPolicy(memberSubject(p.MemberID), roleSubject(p.Role), p.WorkspaceID)
	if err != nil {
		return Access{}, fmt.Errorf("authorize: membership of %s: %w", p.MemberID, err)
	}
	if ok && p.MemberID != "" && p.Role != "" {
		return Access{Allowed: true}, nil
	}
	// The denial path: say why. An empty field would match any in a
	// filter, so filter on the member alone and compare the workspace here.
	held, err := pol.enforcer.GetFilteredGroupingPolicy(0, memberSubject(p.MemberID))
	if err != nil {
		return Access{}, fmt.Errorf("authorize: membership of %s: %w", p.MemberID, err)
	}
	for _, g := range held {
		if len(g) == 3 && g[2] == p.WorkspaceID && p.WorkspaceID != "" {
			return Access{Reason: fmt.Sprintf("the role of %q changed from %q to %q during the call; retry",
				p.MemberName, p.Role, roleOf(g[1]))}, nil
		}
	}
	return Access{Reason: fmt.Sprintf("%q has no role in workspace %q", p.MemberName, p.WorkspaceID)}, nil
}

// human returns the role, in the loaded memberships, of the human an agent
// principal acts for; "" for a user. An agent never exceeds its human
// (DESIGN.md principle 5), so an agent whose human is unknown or has no role
// in the workspace is denied everything: an agent member from a database
// older than required owners, say.
func (pol *policy) human(p store.Principal) (string, Access, error) {
	if p.Kind != store.KindAgent {
		return "", Access{Allowed: true}, nil
	}
	if p.OwnerID == "" {
		return "", Access{Reason: fmt.Sprintf("agent %q acts for no human; recreate its key with --owner naming the person it acts for", p.MemberName)}, nil
	}
	held, err := pol.enforcer.GetFilteredGroupingPolicy(0, memberSubject(p.OwnerID))
	if err != nil {
		return "", Access{}, fmt.Errorf("authorize: membership of %s: %w", p.OwnerID, err)
	}
	for _, g := range held {
		if len(g) == 3 && g[2] == p.WorkspaceID && p.WorkspaceID != "" {
			return roleOf(g[1]), Access{Allowed: true}, nil
		}
	}
	return "", Access{Reason: fmt.Sprintf("the human agent %q acts for has no role in workspace %q", p.MemberName, p.WorkspaceID)}, nil
}

// decide asks Casbin whether p's role holds permission, which must be known,
// and for an agent whether its human's role (human) holds it too: an agent
// holds the intersection of both.
func (pol *policy) decide(p store.Principal, human, permission string) (Access, error) {
	obj, act := permissionParts(permission)
	ok, err := pol.enforcer.Enforce(roleSubject(p.Role), p.WorkspaceID, obj, act)
	if err != nil {
		return Access{}, fmt.Errorf("authorize %s: %w", permission, err)
	}
	if !ok {
		return Access{Reason: fmt.Sprintf("role %q lacks permission %q", p.Role, permission)}, nil
	}
	if p.Kind != store.KindAgent {
		return Access{Allowed: true}, nil
	}
	ok, err = pol.enforcer.Enforce(roleSubject(human), p.WorkspaceID, obj, act)
	if err != nil {
		return Access{}, fmt.Errorf("authorize %s: %w", permission, err)
	}
	if !ok {
		return Access{Reason: fmt.Sprintf("the human agent %q acts for has role %q, which lacks permission %q, and an agent never exceeds its human",
			p.MemberName, human, permission)}, nil
	}
	return Access{Allowed: true}, nil
}
