package guardrails

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// memLimiter is an in-memory sliding-window RateLimiter for tests.
type memLimiter struct {
	mu   sync.Mutex
	uses map[string][]time.Time
}

func (m *memLimiter) Take(_ context.Context, bucket string, limit int, window time.Duration, now time.Time, consume bool) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.uses == nil {
		m.uses = map[string][]time.Time{}
	}
	var live []time.Time
	for _, t := range m.uses[bucket] {
		if now.Sub(t) < window {
			live = append(live, t)
		}
	}
	m.uses[bucket] = live
	if len(live) >= limit {
		return false, live[0].Add(window).Sub(now), nil
	}
	if consume {
		m.uses[bucket] = append(live, now)
	}
	return true, 0, nil
}

func (m *memLimiter) Release(_ context.Context, bucket string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := slices.Index(m.uses[bucket], at); i >= 0 {
		m.uses[bucket] = slices.Delete(m.uses[bucket], i, i+1)
	}
	return nil
}

func TestParsePoliciesRejectsBadFiles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml, want string
	}{
		{"malformed", "policies: [", "policies.yaml: yaml:"},
		{"not a mapping", "- a\n- b\n", "policies.yaml:1: expected a mapping"},
		{"unknown top field", "policies: []\nrules: []\n", `policies.yaml:2: unknown field "rules"`},
		{"unknown field", "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [any]\n    message: m\n    efect: deny\n", `policies.yaml:7: unknown field "efect"`},
		{"bad type", "policies:\n  - id: a\n    type: maybe\n    resources: [model]\n    operations: [any]\n    message: m\n", `policies.yaml:3: policy a: type must be`},
		{"bad resource", "policies:\n  - id: a\n    type: deny\n    resources: [modle]\n    operations: [any]\n    message: m\n", `policies.yaml:4: policy a: unknown resource "modle"`},
		{"bad operation", "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [erase]\n    message: m\n", `policies.yaml:5: policy a: unknown operation "erase"`},
		{"bad source", "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [any]\n    sources: [ai]\n    message: m\n", `policies.yaml:6: policy a: unknown source "ai"`},
		{"bad cel", "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [any]\n    message: m\n    condition: facts.size >>> 3\n", "policies.yaml:7: policy a: condition:"},
		{"cel not bool", "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [any]\n    message: m\n    condition: '\"yes\"'\n", "policies.yaml:7: policy a: condition: must be a boolean"},
		{"cel unknown variable", "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [any]\n    message: m\n    condition: user.admin\n", "undeclared reference to 'user'"},
		{"duplicate id", "policies:\n  - {id: a, type: deny, resources: [model], operations: [any], message: m}\n  - {id: a, type: deny, resources: [model], operations: [any], message: m}\n", `policies.yaml:3: policy id "a" is already used on line 2`},
		{"rate limit without limit", "policies:\n  - id: a\n    type: rate_limit\n    resources: [model]\n    operations: [any]\n    message: m\n", "policies.yaml:3: policy a: a rate_limit needs a positive limit and window"},
		{"limit on deny", "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [any]\n    message: m\n    limit: 3\n", "policies.yaml:7: policy a: limit, window and scope belong"},
		{"bad window", "policies:\n  - id: a\n    type: rate_limit\n    resources: [model]\n    operations: [any]\n    message: m\n    limit: 3\n    window: soon\n", "policies.yaml:2:"},
		{"missing message", "policies:\n  - id: a\n    type: deny\n    resources: [model]\n    operations: [any]\n", "policies.yaml:2: policy a: a message"},
		{"bad id", "policies:\n  - id: 'A B'\n    type: deny\n    resources: [model]\n    operations: [any]\n    message: m\n", `policies.yaml:2: policy id "A B"`},
		{"empty", "", "policies.yaml: empty policy file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePolicies("policies.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDefaultPolicies(t *testing.T) {
	t.Parallel()
	set, err := DefaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Version) != 12 || len(set.Policies) < 6 {
		t.Fatalf("defaults: version %q, %d policies", set.Version, len(set.Policies))
	}
	e := NewEngine(set, &memLimiter{})
	agent := store.Principal{WorkspaceID: "ws", MemberID: "m1", Kind: store.KindAgent, Role: "member", KeyID: "key1", KeyPrefix: "ss_aaaaaaaaaaaa"}
	// blast is an update's facts: its blast radius (nothing changed unless
	// set) and the size facts of an audience update.
	blast := func(kv ...any) map[string]any {
		f := map[string]any{"dependents_uncounted": int64(0), "synced_audiences_changed": int64(0), "max_dependent_change": int64(0),
			"max_dependent_change_pct": 0.0, "max_dependent_size": int64(0), "estimated_size": int64(10)}
		for i := 0; i < len(kv); i += 2 {
			f[kv[i].(string)] = kv[i+1]
		}
		return f
	}
	cases := []struct {
		source, resource, op string
		facts                map[string]any
		frozen               bool
		want                 string
		rule                 string
	}{
		{store.SourceAI, "model", "read", nil, false, EffectAllow, ""},
		{store.SourceAI, "audience", "read", nil, true, EffectAllow, ""},
		{store.SourceAI, "audience", "create", map[string]any{"estimated_size": 5000}, false, EffectAllow, ""},
		{store.SourceAI, "audience", "create", map[string]any{"estimated_size": 250000}, false, EffectRequireApproval, "ai-large-audience"},
		{store.SourceAI, "audience", "update", blast("estimated_size", 100001.0), false, EffectRequireApproval, "ai-large-audience"},
		{store.SourceAI, "audience", "update", blast(), false, EffectAllow, ""},
		{store.SourceAI, "model", "update", blast(), false, EffectAllow, ""},
		{store.SourceAI, "model", "update", blast("synced_audiences_changed", int64(1)), false, EffectRequireApproval, "ai-synced-audience-change"},
		{store.SourceAI, "audience", "update", blast("synced_audiences_changed", int64(1)), false, EffectRequireApproval, "ai-synced-audience-change"},
		{store.SourceAI, "audience", "update", blast("max_dependent_change", int64(1001), "max_dependent_change_pct", 5.0), false, EffectRequireApproval, "ai-dependent-audience-change"},
		{store.SourceAI, "model", "update", blast("max_dependent_change", int64(30), "max_dependent_change_pct", 10.5), false, EffectRequireApproval, "ai-dependent-audience-change"},
		{store.SourceAI, "model", "update", blast("max_dependent_change", int64(9), "max_dependent_change_pct", 9.0), false, EffectAllow, ""},
		{store.SourceAI, "model", "update", blast("max_dependent_size", int64(100001)), false, EffectRequireApproval, "ai-dependent-audience-change"},
		{store.SourceAI, "model", "update", blast("dependents_uncounted", int64(1)), false, EffectRequireApproval, "ai-dependent-audience-change"},
		{store.SourceAI, "model", "update", map[string]any{}, false, EffectDeny, "ai-synced-audience-change"},
		{store.SourceAI, "audience", "create", map[string]any{}, false, EffectDeny, "ai-large-audience"},
		{store.SourceAI, "audience", "delete", nil, false, EffectRequireApproval, "ai-delete"},
		{store.SourceAI, "model", "delete", nil, false, EffectRequireApproval, "ai-delete"},
		{store.SourceAI, "sync", "trigger", map[string]any{"destination_environment": "production"}, false, EffectRequireApproval, "ai-sync-production"},
		{store.SourceAI, "sync", "create", map[string]any{"destination_environment": "sandbox"}, false, EffectAllow, ""},
		{store.SourceAI, "destination", "update", nil, false, EffectDeny, "ai-credentials"},
		{store.SourceAI, "destination", "delete", nil, false, EffectDeny, "ai-credentials"},
		{store.SourceAI, "role", "update", nil, false, EffectDeny, "ai-governance"},
		{store.SourceAI, "key", "create", nil, false, EffectDeny, "ai-governance"},
		{store.SourceAI, "policy", "delete", nil, false, EffectDeny, "ai-governance"},
		{store.SourceAI, "workspace", "update", nil, false, EffectDeny, "ai-governance"},
		{store.SourceAI, "model", "create", nil, true, EffectDeny, KillSwitchRule},
		{store.SourceAPI, "model", "delete", nil, false, EffectAllow, ""},
		{store.SourceAPI, "role", "update", nil, true, EffectAllow, ""},
	}
	for _, tc := range cases {
		in := Input{Principal: agent, Source: tc.source, Resource: tc.resource, Operation: tc.op, Facts: tc.facts, WritesFrozen: tc.frozen}
		d, _ := e.DryRun(context.Background(), in)
		if d.Effect != tc.want || (tc.rule != "" && (len(d.Rules) == 0 || d.Rules[0] != tc.rule)) {
			t.Errorf("%s %s %s facts=%v frozen=%v: %s %v (%s), want %s %s", tc.source, tc.op, tc.resource, tc.facts, tc.frozen, d.Effect, d.Rules, d.Reason, tc.want, tc.rule)
		}
		if d.PolicyVersion != set.Version {
			t.Errorf("decision does not record the policy version")
		}
		if d.Effect != EffectAllow && (d.Reason == "" || len(d.Suggestions) == 0) {
			t.Errorf("%s %s: a %s decision needs a reason and a suggestion: %+v", tc.op, tc.resource, d.Effect, d)
		}
	}
}

func TestRateLimitCountsWritesPerKey(t *testing.T) {
	t.Parallel()
	set, err := DefaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set, &memLimiter{})
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	in := func(key string, at time.Time) Input {
		return Input{
			// Each key acts for a human of its own here: the per-human
			// budget has its own test.
			Principal: store.Principal{WorkspaceID: "ws", KeyID: key, MemberID: "agent-" + key, OwnerID: "owner-" + key, Kind: store.KindAgent, Role: "member"},
			Source:    store.SourceAI, Resource: "model", Operation: "create", Now: at,
		}
	}
	// A dry run never counts.
	for range 40 {
		if d, _ := e.DryRun(context.Background(), in("k1", now)); d.Effect != EffectAllow {
			t.Fatalf("dry run: %+v", d)
		}
	}
	for i := range 30 {
		if d, err := e.Decide(context.Background(), in("k1", now.Add(time.Duration(i)*time.Minute))); d.Effect != EffectAllow || err != nil {
			t.Fatalf("write %d: %+v %v", i+1, d, err)
		}
	}
	d, _ := e.Decide(context.Background(), in("k1", now.Add(31*time.Minute)))
	if d.Effect != EffectRateLimited || !slices.Contains(d.Rules, "ai-write-rate") || d.RetryAfter != 29*time.Minute || !strings.Contains(d.Reason, "29m0s") {
		t.Fatalf("31st write: %+v", d)
	}
	// Another key has its own budget; the first key's budget returns with time.
	if d, _ := e.Decide(context.Background(), in("k2", now.Add(31*time.Minute))); d.Effect != EffectAllow {
		t.Errorf("another key was limited: %+v", d)
	}
	if d, _ := e.Decide(context.Background(), in("k1", now.Add(61*time.Minute))); d.Effect != EffectAllow {
		t.Errorf("after the window: %+v", d)
	}
	// Reads are never counted.
	r := in("k1", now.Add(61*time.Minute))
	r.Operation = "read"
	for range 100 {
		if d, _ := e.Decide(context.Background(), r); d.Effect != EffectAllow {
			t.Fatalf("read limited: %+v", d)
		}
	}
}

func TestConditionsFailClosed(t *testing.T) {
	t.Parallel()
	set, err := ParsePolicies("p.yaml", []byte(`policies:
  - id: big
    type: require_approval
    resources: [audience]
    operations: [create]
    condition: facts.estimated_size > 10
    message: big
  - id: by-arg
    type: deny
    resources: [model]
    operations: [create]
    condition: args.name.startsWith("tmp_") && principal.kind == "agent"
    message: no temporary models from agents
`))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set, &memLimiter{})
	agent := store.Principal{Kind: store.KindAgent}
	d, err := e.Decide(context.Background(), Input{Principal: agent, Source: store.SourceAI, Resource: "audience", Operation: "create", Facts: map[string]any{"estimated_size": "many"}})
	if d.Effect != EffectDeny || err == nil {
		t.Errorf("a condition that cannot be evaluated must deny: %+v %v", d, err)
	}
	d, _ = e.Decide(context.Background(), Input{Principal: agent, Source: store.SourceAI, Resource: "model", Operation: "create", Args: map[string]any{"name": "tmp_x"}})
	if d.Effect != EffectDeny || d.Rules[0] != "by-arg" || !strings.Contains(d.Reason, "no temporary models") {
		t.Errorf("args condition: %+v", d)
	}
	d, _ = e.Decide(context.Background(), Input{Principal: agent, Source: store.SourceAI, Resource: "model", Operation: "create", Args: map[string]any{"name": "orders_x"}})
	if d.Effect != EffectAllow {
		t.Errorf("args condition false: %+v", d)
	}
}

// BenchmarkDecide reports the cost of a guardrail decision with all default
// policies and their CEL conditions (facts given, rate limit counted in
// memory), for a read and for a write.
func BenchmarkDecide(b *testing.B) {
	set, err := DefaultPolicies()
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(set, &memLimiter{})
	p := store.Principal{WorkspaceID: "ws", KeyID: "k", Kind: store.KindAgent, Role: "member"}
	for _, op := range []string{"read", "create"} {
		b.Run(op, func(b *testing.B) {
			in := Input{Principal: p, Source: store.SourceAI, Resource: "audience", Operation: op,
				Facts: map[string]any{"estimated_size": 5000}, Now: time.Now()}
			for b.Loop() {
				if _, err := e.DryRun(context.Background(), in); err != nil {
					b.Fatal(fmt.Sprint(err))
				}
			}
		})
	}
}

// BenchmarkFullDecision is the gate's decision without facts and audit:
// the RBAC check (warm cache) plus every default policy with its CEL
// conditions, for an AI write that passes them all (rate limit counted in
// memory).
func BenchmarkFullDecision(b *testing.B) {
	ctx := context.Background()
	src := newFakeSource()
	withBuiltIns(src, "ws")
	p := src.setMember("ws", "m1", "member")
	p.KeyID, p.Kind = "k1", store.KindAgent
	rbac, err := NewRBAC(ctx, src, "ws")
	if err != nil {
		b.Fatal(err)
	}
	set, err := DefaultPolicies()
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(set, &memLimiter{})
	in := Input{Principal: p, Source: store.SourceAI, Resource: "audience", Operation: "create", Facts: map[string]any{"estimated_size": 5000}, Now: time.Now()}
	for b.Loop() {
		acc, err := rbac.Authorize(ctx, p, "audiences.create")
		if err != nil || !acc.Allowed {
			b.Fatal("denied by RBAC")
		}
		if d, err := e.DryRun(ctx, in); err != nil || d.Effect != EffectAllow {
			b.Fatalf("decision %+v %v", d, err)
		}
	}
}
