package guardrails

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// Effects of a guardrail decision. They combine strongest first: deny, then
// rate_limited (a rate limit denies once reached), then require_approval,
// then allow.
const (
	EffectDeny            = "deny"
	EffectRateLimited     = "rate_limited"
	EffectRequireApproval = "require_approval"
	EffectAllow           = "allow"
)

// KillSwitchRule is the rule a decision names when the workspace setting
// ai_writes_frozen denies an AI write. It is built in: no policy file can
// remove it.
const KillSwitchRule = "ai_writes_frozen"

// Input is what a guardrail decision looks at (DESIGN.md section 6).
type Input struct {
	Principal store.Principal
	Source    string
	Tool      string
	Resource  string
	Operation string
	Args      map[string]any
	// Facts are what the tool computed before the decision, by the names
	// of their declarations (facts.go). A condition reads each as
	// facts.NAME; a fact that is not declared, or not of its declared
	// type, fails every condition that applies (which denies).
	Facts map[string]any
	// WritesFrozen is the workspace's ai_writes_frozen setting.
	WritesFrozen bool
	Now          time.Time
}

// Decision is the outcome: the effect, the ids of the rules that fired for
// it, a reason a person can read, what the agent can do instead, and the
// policy set version it was made under.
type Decision struct {
	Effect        string        `json:"effect"`
	Rules         []string      `json:"rules,omitempty"`
	Reason        string        `json:"reason,omitempty"`
	Suggestions   []string      `json:"suggestions,omitempty"`
	PolicyVersion string        `json:"policy_version"`
	RetryAfter    time.Duration `json:"retry_after,omitempty"`

	// taken are the rate-limit uses Decide counted for the call, which
	// Refund gives back when the call does not go on.
	taken []use
}

// use is one counted use of a rate-limit bucket.
type use struct {
	bucket string
	at     time.Time
}

// RateLimiter counts uses of a bucket in a sliding window: store.RateLimits
// (Take and Release are documented there), which the store satisfies
// atomically across the processes sharing it; tests use one in memory.
type RateLimiter interface {
	Take(ctx context.Context, bucket string, limit int, window time.Duration, now time.Time, consume bool) (allowed bool, retryAfter time.Duration, err error)
	Release(ctx context.Context, bucket string, at time.Time) error
}

var _ RateLimiter = store.RateLimits(nil)

// Engine decides with the active policy set. It is safe for concurrent use;
// SetPolicies swaps the set atomically.
type Engine struct {
	limiter RateLimiter
	mu      sync.RWMutex
	set     *PolicySet
}

// NewEngine returns an engine over set, counting rate limits in limiter.
func NewEngine(set *PolicySet, limiter RateLimiter) *Engine {
	return &Engine{set: set, limiter: limiter}
}

// Policies returns the active policy set.
func (e *Engine) Policies() *PolicySet {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.set
}

// SetPolicies makes set the active policy set.
func (e *Engine) SetPolicies(set *PolicySet) {
	e.mu.Lock()
	e.set = set
	e.mu.Unlock()
}

// Decide decides a call and, unless it is denied, counts it against the
// rate limits that apply: every bucket must have room, and a call counts
// against all of them or none. The count is taken at once, so calls racing
// for the last use cannot both have it; a call that then does not go on
// (the tool refused it, or it failed before changing anything) gives its
// uses back with Refund. A condition that cannot be evaluated, or a rate
// limit that cannot be checked, denies (fail closed); the error is returned
// beside the deny decision for the log.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	return e.decide(ctx, in, true)
}

// Refund gives back the rate-limit uses Decide counted for d, for a call
// that did not go on to run or to be queued, and clears them from d, so a
// second Refund gives back nothing. A decision that counted nothing needs
// no refund.
func (e *Engine) Refund(ctx context.Context, d *Decision) error {
	var errs []error
	for _, u := range d.taken {
		if err := e.limiter.Release(ctx, u.bucket, u.at); err != nil {
			errs = append(errs, fmt.Errorf("refund rate limit %s: %w", u.bucket, err))
		}
	}
	d.taken = nil
	return errors.Join(errs...)
}

// DryRun answers what Decide would, without counting anything.
func (e *Engine) DryRun(ctx context.Context, in Input) (Decision, error) {
	return e.decide(ctx, in, false)
}

func (e *Engine) decide(ctx context.Context, in Input, consume bool) (Decision, error) {
	set := e.Policies()
	d := Decision{Effect: EffectAllow, PolicyVersion: set.Version}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	if in.Source == store.SourceAI && in.Operation != "read" && in.WritesFrozen {
		return deny(d, []string{KillSwitchRule}, "AI writes are frozen in this workspace (kill switch ai_writes_frozen)",
			"ask a workspace owner; nothing an agent writes is accepted until they lift the freeze"), nil
	}
	// The variables are built for the first condition that applies: a
	// fact that is undeclared or of another type than declared fails that
	// condition, which denies.
	var vars map[string]any
	var varsErr error
	fired := map[string][]Policy{}
	for _, p := range set.Policies {
		if !p.applies(in) {
			continue
		}
		if p.program != nil {
			if vars == nil && varsErr == nil {
				vars, varsErr = activation(in)
			}
			if varsErr != nil {
				return deny(d, []string{p.ID}, fmt.Sprintf("policy %s could not be evaluated, so the call is denied", p.ID),
					"ask a workspace admin to check the policy"), fmt.Errorf("evaluate policy %s: %w", p.ID, varsErr)
			}
			out, _, err := p.program.ContextEval(ctx, vars)
			if err != nil {
				return deny(d, []string{p.ID}, fmt.Sprintf("policy %s could not be evaluated, so the call is denied", p.ID),
					"ask a workspace admin to check the policy"), fmt.Errorf("evaluate policy %s: %w", p.ID, err)
			}
			hit, ok := out.Value().(bool)
			if !ok {
				return deny(d, []string{p.ID}, fmt.Sprintf("policy %s did not yield true or false, so the call is denied", p.ID),
					"ask a workspace admin to check the policy"), fmt.Errorf("evaluate policy %s: result %v is not a boolean", p.ID, out)
			}
			if !hit {
				continue
			}
		}
		fired[p.Type] = append(fired[p.Type], p)
	}
	if ps := fired[TypeDeny]; len(ps) > 0 {
		return withPolicies(d, EffectDeny, ps), nil
	}
	if ps := fired[TypeRateLimit]; len(ps) > 0 {
		limited, retry, taken, err := e.checkLimits(ctx, in, ps, consume)
		if err != nil {
			return deny(d, ids(ps), "rate limits could not be checked, so the call is denied", "try again shortly"), err
		}
		d.taken = taken
		if len(limited) > 0 {
			d = withPolicies(d, EffectRateLimited, limited)
			d.RetryAfter = retry
			d.Reason += fmt.Sprintf("; the next call is allowed in %s", retry.Round(time.Second))
			return d, nil
		}
	}
	if ps := fired[TypeRequireApproval]; len(ps) > 0 {
		return withPolicies(d, EffectRequireApproval, ps), nil
	}
	return d, nil
}

// checkLimits peeks at every rate limit first and consumes only when all of
// them allow the call, so a limited call counts against none. It returns
// the uses it took; when one bucket is taken by another call in between,
// the uses already taken for this call are given back.
func (e *Engine) checkLimits(ctx context.Context, in Input, ps []Policy, consume bool) ([]Policy, time.Duration, []use, error) {
	if e.limiter == nil {
		return nil, 0, nil, fmt.Errorf("no rate limiter configured")
	}
	var limited []Policy
	var retry time.Duration
	buckets := make([]string, len(ps))
	for i, p := range ps {
		b, err := bucket(p, in)
		if err != nil {
			return nil, 0, nil, err
		}
		buckets[i] = b
		ok, after, err := e.limiter.Take(ctx, b, p.Limit, p.Window, in.Now, false)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("rate limit %s: %w", p.ID, err)
		}
		if !ok {
			limited = append(limited, p)
			retry = max(retry, after)
		}
	}
	if len(limited) > 0 || !consume {
		return limited, retry, nil, nil
	}
	var taken []use
	giveBack := func() error {
		d := Decision{taken: taken}
		return e.Refund(context.WithoutCancel(ctx), &d)
	}
	for i, p := range ps {
		ok, after, err := e.limiter.Take(ctx, buckets[i], p.Limit, p.Window, in.Now, true)
		if err != nil {
			return nil, 0, nil, errors.Join(fmt.Errorf("rate limit %s: %w", p.ID, err), giveBack())
		}
		if !ok {
			// Another call took the last use in between.
			limited = append(limited, p)
			retry = max(retry, after)
			break
		}
		taken = append(taken, use{bucket: buckets[i], at: in.Now})
	}
	if len(limited) > 0 {
		return limited, retry, nil, giveBack()
	}
	return nil, 0, taken, nil
}

// bucket names the counter of a rate limit for a caller. A caller without
// the identity the scope needs cannot be counted, which denies the call.
func bucket(p Policy, in Input) (string, error) {
	var id string
	switch p.Scope {
	case ScopeWorkspace:
		id = in.Principal.WorkspaceID
	case ScopeHuman:
		id = in.Principal.Human()
	default:
		id = in.Principal.KeyID
	}
	if id == "" {
		return "", fmt.Errorf("rate limit %s: the caller has no %s to count against", p.ID, p.Scope)
	}
	return "policy:" + p.ID + ":" + p.Scope + ":" + id, nil
}

// applies reports whether p covers the call, before its condition.
func (p *Policy) applies(in Input) bool {
	match := func(list []string, v, all string) bool {
		return len(list) == 0 || slices.Contains(list, v) || slices.Contains(list, all)
	}
	return match(p.Resources, in.Resource, "*") &&
		match(p.Operations, in.Operation, "any") &&
		match(p.Sources, in.Source, "") &&
		match(p.Roles, in.Principal.Role, "") &&
		(len(p.Keys) == 0 || slices.Contains(p.Keys, in.Principal.KeyPrefix))
}

// activation is the variables a condition sees: each fact as facts.NAME
// of its declared type (factVars; a fact the call lacks is no variable, so
// a condition reading it fails and denies). It fails for a fact that is
// not declared or not of its type.
func activation(in Input) (map[string]any, error) {
	groups := make([]any, len(in.Principal.Groups))
	for i, g := range in.Principal.Groups {
		groups[i] = g
	}
	args := in.Args
	if args == nil {
		args = map[string]any{}
	}
	vars := map[string]any{
		"principal": map[string]any{
			"id":         in.Principal.MemberID,
			"name":       in.Principal.MemberName,
			"kind":       in.Principal.Kind,
			"role":       in.Principal.Role,
			"groups":     groups,
			"key_prefix": in.Principal.KeyPrefix,
			"workspace":  in.Principal.WorkspaceID,
		},
		"source":    in.Source,
		"tool":      in.Tool,
		"resource":  in.Resource,
		"operation": in.Operation,
		"args":      args,
	}
	if err := factVars(in.Facts, vars); err != nil {
		return nil, err
	}
	return vars, nil
}

func deny(d Decision, rules []string, reason, suggestion string) Decision {
	d.Effect, d.Rules, d.Reason, d.Suggestions = EffectDeny, rules, reason, []string{suggestion}
	return d
}

func withPolicies(d Decision, effect string, ps []Policy) Decision {
	d.Effect = effect
	var reasons []string
	for _, p := range ps {
		d.Rules = append(d.Rules, p.ID)
		reasons = append(reasons, p.ID+": "+p.Message)
		if p.Suggestion != "" && !slices.Contains(d.Suggestions, p.Suggestion) {
			d.Suggestions = append(d.Suggestions, p.Suggestion)
		}
	}
	d.Reason = strings.Join(reasons, "; ")
	return d
}

func ids(ps []Policy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}
