package guardrails

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// fakeSource is an in-memory RBAC source whose version bumps on every change.
type fakeSource struct {
	mu      sync.Mutex
	version int64
	roles   map[string][]store.Role
	members map[string][]store.Member
}

func newFakeSource() *fakeSource {
	return &fakeSource{version: 1, roles: map[string][]store.Role{}, members: map[string][]store.Member{}}
}

func (f *fakeSource) Roles(_ context.Context, ws string) ([]store.Role, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.roles[ws]), nil
}

func (f *fakeSource) Members(_ context.Context, ws string) ([]store.Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members[ws]), nil
}

func (f *fakeSource) RBACVersion(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version, nil
}

func (f *fakeSource) putRole(ws, name string, perms ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roles[ws] = slices.DeleteFunc(f.roles[ws], func(r store.Role) bool { return r.Name == name })
	f.roles[ws] = append(f.roles[ws], store.Role{WorkspaceID: ws, Name: name, Permissions: perms})
	f.version++
}

func (f *fakeSource) setMember(ws, id, role string) store.Principal {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[ws] = slices.DeleteFunc(f.members[ws], func(m store.Member) bool { return m.ID == id })
	f.members[ws] = append(f.members[ws], store.Member{ID: id, WorkspaceID: ws, Name: id, Role: role})
	f.version++
	return store.Principal{WorkspaceID: ws, MemberID: id, MemberName: id, Role: role, RBACVersion: f.version}
}

// principal is what the store would return for the member now.
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

func mustAuthorize(t *testing.T, r *RBAC, p store.Principal, perm string) Access {
	t.Helper()
	d, err := r.Authorize(context.Background(), p, perm)
	if err != nil {
		t.Fatalf("authorize %s: %v", perm, err)
	}
	return d
}

func TestAuthorizeBuiltInRoles(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	f.setMember("ws1", "o", "owner")
	f.setMember("ws1", "a", "admin")
	f.setMember("ws1", "m", "member")
	r, err := NewRBAC(context.Background(), f, "ws1")
	if err != nil {
		t.Fatal(err)
	}
	wantAdmin := slices.DeleteFunc(slices.Clone(wantRoles["owner"]), func(p string) bool { return p == "workspace.manage" })
	for id, want := range map[string][]string{"o": wantRoles["owner"], "a": wantAdmin, "m": wantRoles["member"]} {
		p := f.principal("ws1", id)
		for _, perm := range AllPermissions() {
			d := mustAuthorize(t, r, p, perm)
			if d.Allowed != slices.Contains(want, perm) {
				t.Errorf("%s %s: allowed %v", p.Role, perm, d.Allowed)
			}
			if !d.Allowed && !strings.Contains(d.Reason, `"`+perm+`"`) {
				t.Errorf("denial reason %q does not name %s", d.Reason, perm)
			}
		}
	}
}

func TestNoStaleAllowAfterRoleChange(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	p := f.setMember("ws1", "m1", "admin")
	r, err := NewRBAC(context.Background(), f, "ws1")
	if err != nil {
		t.Fatal(err)
	}
	// Warm the decision cache with an allow.
	for range 3 {
		if !mustAuthorize(t, r, p, "audit.read").Allowed {
			t.Fatal("admin denied audit.read")
		}
	}
	p = f.setMember("ws1", "m1", "member")
	if d := mustAuthorize(t, r, p, "audit.read"); d.Allowed {
		t.Fatal("a cached allow survived the role change from admin to member")
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
}

func TestStalePrincipalIsDenied(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	old := f.setMember("ws1", "m1", "admin")
	f.setMember("ws1", "m1", "member")
	r, err := NewRBAC(context.Background(), f, "ws1")
	if err != nil {
		t.Fatal(err)
	}
	// A principal read before the change still claims admin.
	if d := mustAuthorize(t, r, old, "audit.read"); d.Allowed || !strings.Contains(d.Reason, "changed") {
		t.Fatalf("stale principal: %+v", d)
	}
}

func TestWorkspacesAreIsolated(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	withBuiltIns(f, "ws2")
	p := f.setMember("ws1", "m1", "owner")
	r, err := NewRBAC(context.Background(), f, "ws1", "ws2")
	if err != nil {
		t.Fatal(err)
	}
	other := p
	other.WorkspaceID = "ws2"
	if mustAuthorize(t, r, other, "models.read").Allowed {
		t.Fatal("an owner of ws1 was allowed in ws2")
	}
	perms, err := r.Permitted(context.Background(), other)
	if err != nil || len(perms) != 0 {
		t.Fatalf("permitted in ws2: %v %v", perms, err)
	}
	perms, err = r.Permitted(context.Background(), p)
	if err != nil || len(perms) != 42 {
		t.Fatalf("owner permitted %d permissions (%v)", len(perms), err)
	}
}

func TestUnknownPermissionFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	p := f.setMember("ws1", "m1", "owner")
	r, err := NewRBAC(context.Background(), f, "ws1")
	if err != nil {
		t.Fatal(err)
	}
	for _, perm := range []string{"", "models", "models.*", "root.everything"} {
		if d, err := r.Authorize(context.Background(), p, perm); err == nil || d.Allowed {
			t.Errorf("Authorize(%q) = %+v, %v; want an error and a denial", perm, d, err)
		}
	}
	// A role with an unknown permission is a load error, not a silent grant.
	f.putRole("ws1", "broken", "models.read", "models.everything")
	if _, err := NewRBAC(context.Background(), f, "ws1"); err == nil {
		t.Error("a role with an unknown permission loaded")
	}
}

func TestConcurrentAuthorizeDuringReloads(t *testing.T) {
	t.Parallel()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	for i := range 20 {
		f.setMember("ws1", fmt.Sprintf("m%d", i), "member")
	}
	r, err := NewRBAC(context.Background(), f, "ws1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p := f.principal("ws1", fmt.Sprintf("m%d", (g+i)%20))
				d, err := r.Authorize(context.Background(), p, "models.read")
				if err != nil {
					t.Error(err)
					return
				}
				// Members and admins both hold models.read; a denial may
				// only come from a role that changed mid-call.
				if !d.Allowed && !strings.Contains(d.Reason, "changed") {
					t.Errorf("unexpected denial: %s", d.Reason)
					return
				}
			}
		})
	}
	for i := range 50 {
		role := "member"
		if i%2 == 0 {
			role = "admin"
		}
		f.setMember("ws1", fmt.Sprintf("m%d", i%20), role)
	}
	wg.Wait()
}

// BenchmarkAuthorize reports the Casbin decision cost with 1,000 members and
// 100 custom roles, on the cache-hit path and spread over members and
// permissions, and with the built-in roles only.
func BenchmarkAuthorize(b *testing.B) {
	ctx := context.Background()
	big := newFakeSource()
	withBuiltIns(big, "ws1")
	rng := rand.New(rand.NewPCG(1, 2))
	all := AllPermissions()
	for i := range 100 {
		var perms []string
		for _, p := range all {
			if rng.IntN(2) == 0 {
				perms = append(perms, p)
			}
		}
		big.putRole("ws1", fmt.Sprintf("role%d", i), perms...)
	}
	var members []store.Principal
	for i := range 1000 {
		big.setMember("ws1", fmt.Sprintf("m%d", i), fmt.Sprintf("role%d", i%100))
	}
	for i := range 1000 {
		members = append(members, big.principal("ws1", fmt.Sprintf("m%d", i)))
	}
	r, err := NewRBAC(ctx, big, "ws1")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("1000members-100roles/cache-hit", func(b *testing.B) {
		p := members[0]
		for b.Loop() {
			if _, err := r.Authorize(ctx, p, "models.read"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("1000members-100roles/spread", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if _, err := r.Authorize(ctx, members[i%len(members)], all[(i/len(members)+i)%len(all)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("1000members-100roles/uncached", func(b *testing.B) {
		p := members[1]
		for b.Loop() {
			r.enforcer.InvalidateCache()
			if _, err := r.Authorize(ctx, p, "models.read"); err != nil {
				b.Fatal(err)
			}
		}
	})
	small := newFakeSource()
	withBuiltIns(small, "ws1")
	p := small.setMember("ws1", "m", "member")
	rs, err := NewRBAC(ctx, small, "ws1")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("builtin-roles/uncached", func(b *testing.B) {
		for b.Loop() {
			rs.enforcer.InvalidateCache()
			if _, err := rs.Authorize(ctx, p, "models.read"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
