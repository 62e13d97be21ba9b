package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// storedPolicies keeps the guardrail engine on the workspace's stored
// policy set (store.ActivePolicySet; the shipped defaults when there is
// none). The guard calls follow before every decision: the store keeps the
// set in memory under its settings version, read once per call, so a set
// applied or reset by the command line in another process decides the next
// call and an unchanged one costs a comparison.
type storedPolicies struct {
	store  policySource
	engine *guardrails.Engine
	log    *slog.Logger

	mu sync.Mutex // serialises parsing a changed set
	// seen is the stored record the engine follows now (the zero
	// PolicySet for the defaults); nil before the first call.
	seen atomic.Pointer[store.PolicySet]
}

// policySource is the read side of store.PolicySets, which the follower
// reads before every decision.
type policySource interface {
	ActivePolicySet(ctx context.Context, workspaceID string) (store.PolicySet, error)
}

// follow makes the engine decide with the workspace's stored policy set.
// A store error is returned: the call is then denied (fail closed). A
// stored set that no longer parses (a newer binary's syntax, say) leaves
// the current set in force and is logged once.
func (f *storedPolicies) follow(ctx context.Context, workspaceID string) error {
	if f == nil {
		return nil
	}
	ps, err := f.store.ActivePolicySet(ctx, workspaceID)
	if errors.Is(err, store.ErrNotFound) {
		ps, err = store.PolicySet{}, nil
	}
	if err != nil {
		return fmt.Errorf("read stored policy set: %w", err)
	}
	if seen := f.seen.Load(); seen != nil && samePolicySet(*seen, ps) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if seen := f.seen.Load(); seen != nil && samePolicySet(*seen, ps) {
		return nil
	}
	var set *guardrails.PolicySet
	if ps.Source == "" {
		set, err = guardrails.DefaultPolicies()
	} else {
		set, err = guardrails.ParsePolicies("stored policy set "+ps.Version, []byte(ps.Source))
	}
	if err != nil {
		f.log.Error("stored policy set does not parse: the current policies stay in force", "version", ps.Version, "err", err)
	} else if f.seen.Load() != nil || set.Version != f.engine.Policies().Version {
		// On the first call the engine usually has this set already.
		f.engine.SetPolicies(set)
		f.log.Info("policies changed", "version", set.Version, "applied_by", ps.AppliedBy)
	}
	f.seen.Store(&ps)
	return nil
}

// samePolicySet reports whether two stored records are the same set.
func samePolicySet(a, b store.PolicySet) bool {
	return a.Version == b.Version && a.AppliedAt.Equal(b.AppliedAt) && a.AppliedBy == b.AppliedBy && a.Source == b.Source
}
