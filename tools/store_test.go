package tools

import (
	"reflect"
	"slices"
	"testing"

	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/store"
)

// gateOnly are the store methods no tool may call, by the part of the
// store they belong to: what the gate, the approval queue and the command
// line own. A tool that could append audit events could forge the trail;
// one that could flip the kill switch, apply a policy set or change keys,
// roles or filters could lift its own guardrails. The reads a tool needs
// are let through.
var gateOnly = []struct {
	part    reflect.Type
	allowed []string
}{
	{reflect.TypeFor[store.AuditAppender](), nil},
	{reflect.TypeFor[store.Approvals](), []string{"GetApproval", "ListApprovals"}},
	{reflect.TypeFor[store.Keys](), nil},
	{reflect.TypeFor[store.RBAC](), nil},
	{reflect.TypeFor[store.AccessFilters](), []string{"AccessFiltersFor"}},
	{reflect.TypeFor[store.KillSwitch](), nil},
	{reflect.TypeFor[store.PolicySets](), nil},
	{reflect.TypeFor[store.RateLimits](), nil},
	{reflect.TypeFor[store.PIIClassification](), []string{"PIIClasses"}},
	{reflect.TypeFor[store.Workspaces](), nil},
}

// gateOnlyMethods lists the fields of deps (a struct type) with a method
// that gateOnly keeps from tools, as "Field.Method".
func gateOnlyMethods(deps reflect.Type) []string {
	var found []string
	for i := range deps.NumField() {
		f := deps.Field(i)
		for _, g := range gateOnly {
			for j := range g.part.NumMethod() {
				name := g.part.Method(j).Name
				if slices.Contains(g.allowed, name) {
					continue
				}
				if _, ok := f.Type.MethodByName(name); ok {
					found = append(found, f.Name+"."+name)
				}
			}
		}
	}
	return found
}

// TestDepsLeaveTheGatesStoreWritesOut holds the line of Deps.Store: no
// field of Deps gives a tool a store method that records audit events,
// moves an approval or changes keys, roles, filters or settings. The check
// runs on Deps as it is, and on a Deps that carries the whole store, to
// show that it catches what it looks for.
func TestDepsLeaveTheGatesStoreWritesOut(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		deps reflect.Type
		want []string // a few of the methods to be found
	}{
		{"Deps as it is", reflect.TypeFor[Deps](), nil},
		{"a Deps with the whole store", reflect.TypeFor[struct {
			Store     store.Store
			Approvals *approvals.Queue
		}](), []string{"Store.AppendAudit", "Store.SetWritesFrozen", "Store.TransitionApproval", "Store.PutAccessFilter", "Store.ApplyPolicySet"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			found := gateOnlyMethods(tc.deps)
			if len(tc.want) == 0 && len(found) > 0 {
				t.Errorf("a tool can reach store methods that are not its own: %v", found)
			}
			for _, w := range tc.want {
				if !slices.Contains(found, w) {
					t.Errorf("%s was not found; found: %v", w, found)
				}
			}
		})
	}
}
