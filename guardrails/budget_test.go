package guardrails

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// agentKey is a principal of an agent key acting for owner.
func agentKey(key, agent, owner string) store.Principal {
	return store.Principal{WorkspaceID: "ws", KeyID: key, MemberID: agent, OwnerID: owner, Kind: store.KindAgent, Role: "member"}
}

func write(p store.Principal, at time.Time) Input {
	return Input{Principal: p, Source: store.SourceAI, Resource: "model", Operation: "create", Now: at}
}

func TestRateLimitPerHumanAcrossKeys(t *testing.T) {
	t.Parallel()
	set, err := DefaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	e := NewEngine(set, &memLimiter{})
	keys := []store.Principal{agentKey("k1", "bot-1", "hana"), agentKey("k2", "bot-2", "hana"), agentKey("k3", "bot-1", "hana")}
	for i := range 30 {
		if d, err := e.Decide(ctx, write(keys[i%3], now)); d.Effect != EffectAllow || err != nil {
			t.Fatalf("write %d: %+v %v", i+1, d, err)
		}
	}
	cases := []struct {
		name string
		p    store.Principal
		want string
	}{
		{"a key with writes left", keys[0], EffectRateLimited},
		{"a new key of the same human", agentKey("k4", "bot-4", "hana"), EffectRateLimited},
		{"the human's own user key", store.Principal{WorkspaceID: "ws", KeyID: "k5", MemberID: "hana", Kind: store.KindUser, Role: "owner"}, EffectRateLimited},
		{"another human's agent", agentKey("k6", "bot-6", "ivo"), EffectAllow},
		{"an agent without an owner counts as its own human", agentKey("k7", "hana-lookalike", ""), EffectAllow},
	}
	for _, tc := range cases {
		d, _ := e.Decide(ctx, write(tc.p, now.Add(time.Minute)))
		if d.Effect != tc.want {
			t.Errorf("%s: %+v, want %s", tc.name, d, tc.want)
		}
		if tc.want == EffectRateLimited && (len(d.Rules) != 1 || d.Rules[0] != "ai-write-rate-human" || !strings.Contains(d.Reason, "across all their keys")) {
			t.Errorf("%s: limited by %v (%s), want ai-write-rate-human", tc.name, d.Rules, d.Reason)
		}
	}
}

const oneWrite = `policies:
  - id: key-write
    type: rate_limit
    resources: ["*"]
    operations: [create]
    limit: 1
    window: 1h
    scope: key
    message: one write per key
  - id: human-write
    type: rate_limit
    resources: ["*"]
    operations: [create]
    limit: 1
    window: 1h
    scope: human
    message: one write per human
`

func TestRefundGivesBackWhatDecideCounted(t *testing.T) {
	t.Parallel()
	set, err := ParsePolicies("one.yaml", []byte(oneWrite))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	e := NewEngine(set, &memLimiter{})
	p := agentKey("k1", "bot", "hana")

	d, err := e.Decide(ctx, write(p, now))
	if d.Effect != EffectAllow || err != nil {
		t.Fatalf("first write: %+v %v", d, err)
	}
	if err := e.Refund(ctx, &d); err != nil {
		t.Fatal(err)
	}
	// Refunding again gives back nothing more.
	if err := e.Refund(ctx, &d); err != nil {
		t.Fatal(err)
	}
	d, _ = e.Decide(ctx, write(p, now.Add(time.Second)))
	if d.Effect != EffectAllow {
		t.Fatalf("write after the refund: %+v", d)
	}
	if d2, _ := e.Decide(ctx, write(agentKey("k2", "bot-2", "hana"), now.Add(2*time.Second))); d2.Effect != EffectRateLimited || d2.Rules[0] != "human-write" {
		t.Fatalf("the human's second write: %+v", d2)
	}
	// A limited decision counted nothing: refunding it frees no use.
	limited, _ := e.Decide(ctx, write(p, now.Add(3*time.Second)))
	if err := e.Refund(ctx, &limited); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.Decide(ctx, write(p, now.Add(4*time.Second))); again.Effect != EffectRateLimited {
		t.Errorf("refunding a limited call freed a use: %+v", again)
	}
}

// racingLimiter lets peeks through but refuses consuming bucket lost, as
// if another call took its last use between the peek and the count.
type racingLimiter struct {
	memLimiter
	lost string
}

func (r *racingLimiter) Take(ctx context.Context, bucket string, limit int, window time.Duration, now time.Time, consume bool) (bool, time.Duration, error) {
	if consume && strings.Contains(bucket, r.lost) {
		return false, time.Minute, nil
	}
	return r.memLimiter.Take(ctx, bucket, limit, window, now, consume)
}

func TestRateLimitLostRaceCountsAgainstNoBucket(t *testing.T) {
	t.Parallel()
	set, err := ParsePolicies("one.yaml", []byte(oneWrite))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	lim := &racingLimiter{lost: ":human:"}
	e := NewEngine(set, lim)
	p := agentKey("k1", "bot", "hana")
	d, _ := e.Decide(ctx, write(p, now))
	if d.Effect != EffectRateLimited || d.Rules[0] != "human-write" {
		t.Fatalf("write that lost the race for the human's last use: %+v", d)
	}
	// The key's use it took before losing was given back.
	lim.lost = "nothing"
	if d, _ := e.Decide(ctx, write(p, now.Add(time.Second))); d.Effect != EffectAllow {
		t.Errorf("the key's use was kept by a call that did not run: %+v", d)
	}
}

func TestHumanScopeFailsClosed(t *testing.T) {
	t.Parallel()
	set, err := ParsePolicies("one.yaml", []byte(oneWrite))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set, &memLimiter{})
	d, err := e.Decide(context.Background(), write(store.Principal{WorkspaceID: "ws", KeyID: "k1", Kind: store.KindAgent}, time.Now()))
	if d.Effect != EffectDeny || err == nil {
		t.Errorf("a caller without a human: %+v %v, want a denial", d, err)
	}
	if _, err := ParsePolicies("p.yaml", []byte(strings.Replace(oneWrite, "scope: human", "scope: team", 1))); err == nil ||
		!strings.Contains(err.Error(), `scope must be key, human or workspace, not "team"`) {
		t.Errorf("unknown scope: %v", err)
	}
}
