package guardrails

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// fakeSource is an in-memory RBAC source whose version bumps on every
// change, as the store's does.
type fakeSource struct {
	mu      sync.Mutex
	version int64
	roles   map[string][]store.Role
	members map[string][]store.Member
	fail    error // returned by every read when set

	loads atomic.Int64 // RBACVersion calls: one per load
}

var _ Source = (*fakeSource)(nil)

func newFakeSource() *fakeSource {
	return &fakeSource{version: 1, roles: map[string][]store.Role{}, members: map[string][]store.Member{}}
}

func (f *fakeSource) Roles(_ context.Context, ws string) ([]store.Role, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	out := slices.Clone(f.roles[ws])
	for i := range out {
		out[i].Permissions = slices.Clone(out[i].Permissions)
	}
	return out, nil
}

func (f *fakeSource) Members(_ context.Context, ws string) ([]store.Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	return slices.Clone(f.members[ws]), nil
}

func (f *fakeSource) RBACVersion(context.Context) (int64, error) {
	f.loads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	return f.version, nil
}

func (f *fakeSource) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeSource) putRole(ws, name string, perms ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roles[ws] = slices.DeleteFunc(f.roles[ws], func(r store.Role) bool { return r.Name == name })
	f.roles[ws] = append(f.roles[ws], store.Role{WorkspaceID: ws, Name: name, Permissions: slices.Clone(perms)})
	f.version++
}

// setMember gives a member a role and returns the principal the store
// would read for it now.
func (f *fakeSource) setMember(ws, id, role string) store.Principal {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[ws] = slices.DeleteFunc(f.members[ws], func(m store.Member) bool { return m.ID == id })
	f.members[ws] = append(f.members[ws], store.Member{ID: id, WorkspaceID: ws, Name: id, Role: role})
	f.version++
	return store.Principal{WorkspaceID: ws, MemberID: id, MemberName: id, Role: role, RBACVersion: f.version}
}

func (f *fakeSource) removeMember(ws, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[ws] = slices.DeleteFunc(f.members[ws], func(m store.Member) bool { return m.ID == id })
	f.version++
}

// principal is what the store would return for the member now: its role
// and the version, read together.
func (f *fakeSource) principal(ws, id string) store.Principal {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.members[ws] {
		if m.ID == id {
			return store.Principal{WorkspaceID: ws, MemberID: id, MemberName: id, Role: m.Role, RBACVersion: f.version}
		}
	}
	panic("no member " + id)
}

func withBuiltIns(f *fakeSource, ws string) {
	for _, r := range BuiltInRoles() {
		f.putRole(ws, r.Name, r.Permissions...)
	}
}

func newRBAC(t testing.TB, f *fakeSource, workspaces ...string) *RBAC {
	t.Helper()
	r, err := NewRBAC(context.Background(), f, workspaces...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustAuthorize(t *testing.T, r *RBAC, p store.Principal, perm string) Access {
	t.Helper()
	d, err := r.Authorize(context.Background(), p, perm)
	if err != nil {
		t.Fatalf("authorize %s as %s: %v", perm, p.MemberID, err)
	}
	return d
}

func mustPermitted(t *testing.T, r *RBAC, p store.Principal) []string {
	t.Helper()
	set, err := r.Permitted(context.Background(), p)
	if err != nil {
		t.Fatalf("permitted for %s: %v", p.MemberID, err)
	}
	var out []string
	for perm, ok := range set {
		if !ok {
			t.Errorf("Permitted holds %s = false", perm)
		}
		out = append(out, perm)
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func TestAuthorizeBuiltInRoles(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	f.setMember("ws1", "o", "owner")
	f.setMember("ws1", "a", "admin")
	f.setMember("ws1", "m", "member")
	r := newRBAC(t, f, "ws1")
	for id, want := range map[string][]string{"o": wantRoles["owner"], "a": wantAdmin(), "m": wantRoles["member"]} {
		p := f.principal("ws1", id)
		for _, perm := range AllPermissions() {
			d := mustAuthorize(t, r, p, perm)
			if d.Allowed != slices.Contains(want, perm) {
				t.Errorf("%s %s: allowed %v", p.Role, perm, d.Allowed)
			}
			if d.Allowed && d.Reason != "" {
				t.Errorf("%s %s: an allow with a reason %q", p.Role, perm, d.Reason)
			}
			wantReason := fmt.Sprintf("role %q lacks permission %q", p.Role, perm)
			if !d.Allowed && d.Reason != wantReason {
				t.Errorf("denial reason %q, want %q", d.Reason, wantReason)
			}
		}
		if got := mustPermitted(t, r, p); !slices.Equal(got, sorted(want)) {
			t.Errorf("Permitted(%s):\n got %v\nwant %v", p.Role, got, sorted(want))
		}
	}
}

func TestCustomRoles(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	grant := []string{"audit.read", "models.read", "governance.read"}
	f.putRole("ws1", "auditor", grant...)
	f.putRole("ws1", "nothing")
	auditor := f.setMember("ws1", "u1", "auditor")
	nobody := f.setMember("ws1", "u2", "nothing")
	r := newRBAC(t, f, "ws1")
	if got := mustPermitted(t, r, auditor); !slices.Equal(got, sorted(grant)) {
		t.Errorf("auditor permitted %v, want %v", got, sorted(grant))
	}
	for _, perm := range AllPermissions() {
		if d := mustAuthorize(t, r, auditor, perm); d.Allowed != slices.Contains(grant, perm) {
			t.Errorf("auditor %s: %+v", perm, d)
		}
		if d := mustAuthorize(t, r, nobody, perm); d.Allowed {
			t.Errorf("a role without permissions was allowed %s", perm)
		}
	}
}

func TestNoStaleAllowAfterRoleChange(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	p := f.setMember("ws1", "m1", "admin")
	r := newRBAC(t, f, "ws1")
	// Warm the decision cache with an allow.
	for range 3 {
		if !mustAuthorize(t, r, p, "audit.read").Allowed {
			t.Fatal("admin denied audit.read")
		}
	}
	p = f.setMember("ws1", "m1", "member")
	if d := mustAuthorize(t, r, p, "audit.read"); d.Allowed || d.Reason != `role "member" lacks permission "audit.read"` {
		t.Fatalf("after the change from admin to member: %+v", d)
	}
	if got := mustPermitted(t, r, p); slices.Contains(got, "audit.read") {
		t.Fatalf("Permitted still lists audit.read after the change to member: %v", got)
	}

	// A custom role that loses a permission.
	f.putRole("ws1", "analyst", "audit.read", "models.read")
	p = f.setMember("ws1", "m2", "analyst")
	if !mustAuthorize(t, r, p, "audit.read").Allowed {
		t.Fatal("analyst denied audit.read")
	}
	f.putRole("ws1", "analyst", "models.read")
	p = f.principal("ws1", "m2")
	if mustAuthorize(t, r, p, "audit.read").Allowed {
		t.Fatal("a cached allow survived the custom role losing the permission")
	}
	if !mustAuthorize(t, r, p, "models.read").Allowed {
		t.Fatal("the remaining permission was lost")
	}

	// A member removed from the workspace, with a principal read just
	// before (a key lookup racing the removal): once another caller has
	// made the policy reload past the removal, the stale principal is
	// denied.
	p = f.principal("ws1", "m2")
	f.removeMember("ws1", "m2")
	if !mustAuthorize(t, r, f.principal("ws1", "m1"), "models.read").Allowed {
		t.Fatal("member denied models.read")
	}
	if d := mustAuthorize(t, r, p, "models.read"); d.Allowed || d.Reason != `"m2" has no role in workspace "ws1"` {
		t.Fatalf("removed member: %+v", d)
	}
}

func TestStalePrincipalIsDenied(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	old := f.setMember("ws1", "m1", "admin")
	f.setMember("ws1", "m1", "member")
	r := newRBAC(t, f, "ws1")
	// A principal read before the change still claims admin.
	d := mustAuthorize(t, r, old, "audit.read")
	if d.Allowed || !strings.Contains(d.Reason, "changed") || !strings.Contains(d.Reason, `"member"`) {
		t.Fatalf("stale principal: %+v", d)
	}
	if got := mustPermitted(t, r, old); len(got) != 0 {
		t.Fatalf("stale principal permitted %v", got)
	}
}

func TestWorkspacesAreIsolated(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	withBuiltIns(f, "ws2")
	withBuiltIns(f, "ws3")
	p := f.setMember("ws1", "m1", "owner")
	f.setMember("ws2", "m2", "owner")
	r := newRBAC(t, f, "ws1", "ws2") // ws3 is not loaded
	for _, ws := range []string{"ws2", "ws3", ""} {
		other := p
		other.WorkspaceID = ws
		for _, perm := range AllPermissions() {
			if d := mustAuthorize(t, r, other, perm); d.Allowed || !strings.Contains(d.Reason, "no role in workspace") {
				t.Fatalf("an owner of ws1 in workspace %q, %s: %+v", ws, perm, d)
			}
		}
		if got := mustPermitted(t, r, other); len(got) != 0 {
			t.Fatalf("an owner of ws1 is permitted in workspace %q: %v", ws, got)
		}
	}
	if got := mustPermitted(t, r, p); len(got) != 42 {
		t.Fatalf("owner permitted %d permissions in its own workspace", len(got))
	}
}

// A member id that looks like a role subject must not alias the role: if
// it did, g would make every holder of "member" inherit "owner".
func TestMemberIDCannotNameARole(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	f.setMember("ws1", "role:member", "owner")
	f.setMember("ws1", "member", "owner")
	p := f.setMember("ws1", "m1", "member")
	r := newRBAC(t, f, "ws1")
	if got := mustPermitted(t, r, p); !slices.Equal(got, sorted(wantRoles["member"])) {
		t.Fatalf("member permitted %v", got)
	}
}

// Authorize asks Casbin about the role; asking about the member subject,
// through the g rules, must give the same answer.
func TestRoleSubjectAgreesWithMemberSubject(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	withBuiltIns(f, "ws2")
	f.putRole("ws1", "auditor", "audit.read", "audit.export")
	f.putRole("ws2", "auditor", "models.read")
	ids := map[string]string{"o": "owner", "a": "admin", "m": "member", "x": "auditor"}
	for id, role := range ids {
		f.setMember("ws1", id, role)
	}
	f.setMember("ws2", "x", "auditor")
	r := newRBAC(t, f, "ws1", "ws2")
	e := r.cur.Load().enforcer
	for _, ws := range []string{"ws1", "ws2"} {
		for id := range ids {
			p := f.principal("ws1", id)
			p.WorkspaceID = ws
			for _, perm := range AllPermissions() {
				obj, act := permissionParts(perm)
				native, err := e.Enforce(memberSubject(id), ws, obj, act)
				if err != nil {
					t.Fatal(err)
				}
				if d := mustAuthorize(t, r, p, perm); d.Allowed != native {
					t.Errorf("%s in %s, %s: Authorize %v, Casbin on the member %v", id, ws, perm, d.Allowed, native)
				}
			}
		}
	}
}

func TestUnknownPermissionFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	p := f.setMember("ws1", "m1", "owner")
	r := newRBAC(t, f, "ws1")
	for _, perm := range []string{"", "models", "models.*", "*.*", "models.read.x", "Models.read", "root.everything"} {
		if d, err := r.Authorize(context.Background(), p, perm); err == nil || d.Allowed {
			t.Errorf("Authorize(%q) = %+v, %v; want an error and a denial", perm, d, err)
		}
	}
	// A role with an unknown permission is a load error, not a silent grant.
	f.putRole("ws1", "broken", "models.read", "models.everything")
	if _, err := NewRBAC(context.Background(), f, "ws1"); err == nil || !strings.Contains(err.Error(), "models.everything") {
		t.Errorf("a role with an unknown permission loaded: %v", err)
	}
	// And a principal newer than the last good load is denied.
	p = f.principal("ws1", "m1")
	if d, err := r.Authorize(context.Background(), p, "models.read"); err == nil || d.Allowed {
		t.Errorf("authorized on a policy that failed to load: %+v, %v", d, err)
	}
}

func TestReloadFailureFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	old := f.setMember("ws1", "m1", "admin")
	r := newRBAC(t, f, "ws1")

	p := f.setMember("ws1", "m1", "member")
	boom := errors.New("database is down")
	f.setFail(boom)
	for _, perm := range []string{"models.read", "audit.read"} {
		d, err := r.Authorize(context.Background(), p, perm)
		if !errors.Is(err, boom) || d.Allowed {
			t.Errorf("Authorize %s with the source down: %+v, %v", perm, d, err)
		}
	}
	if set, err := r.Permitted(context.Background(), p); !errors.Is(err, boom) || len(set) != 0 {
		t.Errorf("Permitted with the source down: %v, %v", set, err)
	}
	if err := r.Reload(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Reload with the source down: %v", err)
	}
	// The last good policy still answers principals no newer than it.
	if !mustAuthorize(t, r, old, "audit.read").Allowed {
		t.Error("the last good policy was dropped by a failed reload")
	}

	f.setFail(nil)
	if d := mustAuthorize(t, r, p, "audit.read"); d.Allowed {
		t.Errorf("after recovery: %+v", d)
	}
}

func TestSourceBehindPrincipalFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	p := f.setMember("ws1", "m1", "owner")
	r := newRBAC(t, f, "ws1")
	p.RBACVersion += 10 // read from a store ahead of the one the policy loads from
	if d, err := r.Authorize(context.Background(), p, "models.read"); err == nil || d.Allowed {
		t.Fatalf("decided on rules older than the principal: %+v, %v", d, err)
	}
}

func TestReloadOnceForConcurrentCallers(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	for i := range 10 {
		f.setMember("ws1", fmt.Sprintf("m%d", i), "admin")
	}
	r := newRBAC(t, f, "ws1")
	for i := range 10 {
		f.setMember("ws1", fmt.Sprintf("m%d", i), "member")
	}
	before := f.loads.Load()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			p := f.principal("ws1", fmt.Sprintf("m%d", g%10))
			<-start
			d, err := r.Authorize(context.Background(), p, "audit.read")
			if err != nil || d.Allowed {
				t.Errorf("after the change to member: %+v, %v", d, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := f.loads.Load() - before; n != 1 {
		t.Errorf("%d loads for one version change, want 1", n)
	}
}

func TestConcurrentAuthorizeDuringReloads(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	f.putRole("ws1", "analyst", "models.read")
	for i := range 20 {
		f.setMember("ws1", fmt.Sprintf("m%d", i), "member")
	}
	r := newRBAC(t, f, "ws1")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				p := f.principal("ws1", fmt.Sprintf("m%d", (g+i)%20))
				if i%10 == 0 {
					set, err := r.Permitted(context.Background(), p)
					if err != nil {
						t.Error(err)
						return
					}
					if p.Role != "admin" && set["audit.read"] {
						t.Errorf("Permitted gave audit.read to a %s", p.Role)
						return
					}
					continue
				}
				d, err := r.Authorize(context.Background(), p, "audit.read")
				if err != nil {
					t.Error(err)
					return
				}
				// Only admin holds audit.read: a principal that says
				// member or analyst must never be allowed, and an admin may
				// only be denied because its role changed mid-call.
				switch {
				case d.Allowed && p.Role != "admin":
					t.Errorf("stale allow: a %s was allowed audit.read", p.Role)
					return
				case !d.Allowed && p.Role == "admin" && !strings.Contains(d.Reason, "changed"):
					t.Errorf("unexpected denial of an admin: %s", d.Reason)
					return
				}
			}
		})
	}
	roles := []string{"admin", "member", "analyst"}
	for i := range 150 {
		f.setMember("ws1", fmt.Sprintf("m%d", i%20), roles[i%3])
		if i%7 == 0 {
			f.putRole("ws1", "analyst", "models.read", "syncs.read")
		}
	}
	wg.Wait()
}
