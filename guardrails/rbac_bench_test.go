package guardrails

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// benchRBAC is a workspace with members spread over roles: the built-in
// roles, plus customRoles custom roles with random subsets of the
// permissions (fixed seed). With custom roles the members hold those;
// without, they hold the built-in ones.
type benchRBAC struct {
	src     *fakeSource
	rbac    *RBAC
	members []store.Principal
	// calls is a fixed pseudo-random sequence of (member, permission).
	calls []benchCall
}

type benchCall struct {
	p    store.Principal
	perm string
}

func newBenchRBAC(b *testing.B, members, customRoles int) *benchRBAC {
	b.Helper()
	f := newFakeSource()
	withBuiltIns(f, "ws1")
	rng := rand.New(rand.NewPCG(1, 2))
	roles := []string{RoleOwner, RoleAdmin, RoleMember}
	if customRoles > 0 {
		roles = nil
		for i := range customRoles {
			var perms []string
			for _, p := range allPermissions {
				if rng.IntN(2) == 0 {
					perms = append(perms, p)
				}
			}
			name := fmt.Sprintf("role%d", i)
			f.putRole("ws1", name, perms...)
			roles = append(roles, name)
		}
	}
	for i := range members {
		f.setMember("ws1", fmt.Sprintf("m%d", i), roles[i%len(roles)])
	}
	bb := &benchRBAC{src: f}
	for i := range members {
		bb.members = append(bb.members, f.principal("ws1", fmt.Sprintf("m%d", i)))
	}
	bb.rbac = newRBAC(b, f, "ws1")
	for range 8192 {
		bb.calls = append(bb.calls, benchCall{
			p:    bb.members[rng.IntN(len(bb.members))],
			perm: allPermissions[rng.IntN(len(allPermissions))],
		})
	}
	return bb
}

// warm fills the decision cache with every role and permission.
func (bb *benchRBAC) warm(b *testing.B) {
	b.Helper()
	for _, p := range bb.members {
		if _, err := bb.rbac.Permitted(context.Background(), p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorize reports the cost of one RBAC decision (Casbin plus the
// membership check) with 1,000 members on 100 custom roles and on the 3
// built-in roles:
//
//   - hit: the same request repeated, answered from Casbin's cache;
//   - spread: a pseudo-random spread of members and permissions over a
//     warm cache (the steady state: the cache is per role and permission);
//   - miss: the same spread with the cache cleared before each call, so
//     Casbin scans the p rules (what follows every reload);
//
// and a full Reload, which every role or membership change costs once.
func BenchmarkAuthorize(b *testing.B) {
	ctx := context.Background()
	for _, cfg := range []struct {
		name                 string
		members, customRoles int
	}{
		{"members=1000/roles=100", 1000, 100},
		{"members=1000/roles=builtin", 1000, 0},
	} {
		bb := newBenchRBAC(b, cfg.members, cfg.customRoles)
		e := bb.rbac.cur.Load().enforcer
		b.Run(cfg.name+"/hit", func(b *testing.B) {
			p := bb.members[0]
			for b.Loop() {
				if _, err := bb.rbac.Authorize(ctx, p, "models.read"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(cfg.name+"/spread", func(b *testing.B) {
			bb.warm(b)
			i := 0
			for b.Loop() {
				c := bb.calls[i%len(bb.calls)]
				i++
				if _, err := bb.rbac.Authorize(ctx, c.p, c.perm); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(cfg.name+"/miss", func(b *testing.B) {
			i := 0
			for b.Loop() {
				c := bb.calls[i%len(bb.calls)]
				i++
				if err := e.InvalidateCache(); err != nil {
					b.Fatal(err)
				}
				if _, err := bb.rbac.Authorize(ctx, c.p, c.perm); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(cfg.name+"/reload", func(b *testing.B) {
			for b.Loop() {
				if err := bb.rbac.Reload(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
