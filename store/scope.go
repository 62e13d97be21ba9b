package store

import (
	"context"
	"sync"
)

// A call scope marks a context as one tool call (or one HTTP request that
// is one call). A store that keeps caches guarded by version counters reads
// the counters once per scope instead of once per method, so a call
// authenticates, reads the catalog and checks its settings with one version
// read while every change committed before the call began still applies to
// it. Outside a scope every read checks the counters afresh, which is never
// stale, only slower.
//
// A scope must live no longer than one call: a context that outlives calls
// (a stdio session's, a server's) must never carry one, or its reads would
// see the versions of its first call for ever.

type scopeKey struct{}

// Scope is the memo of one call scope. Its methods are safe for concurrent
// use and do nothing on a nil Scope (no scope).
type Scope struct {
	mu    sync.Mutex
	owner any
	value any
}

// WithCallScope returns ctx in a call scope: ctx itself when it is in one
// already, so the transport and the gate can both open the scope of one
// call and share it.
func WithCallScope(ctx context.Context) context.Context {
	if ScopeOf(ctx) != nil {
		return ctx
	}
	return context.WithValue(ctx, scopeKey{}, &Scope{})
}

// ScopeOf returns ctx's call scope, nil outside one.
func ScopeOf(ctx context.Context) *Scope {
	s, _ := ctx.Value(scopeKey{}).(*Scope)
	return s
}

// Load returns the value owner stored in the scope, if any. One owner (one
// store) holds the scope at a time: another owner's value is not returned.
func (s *Scope) Load(owner any) (any, bool) {
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner != owner || s.value == nil {
		return nil, false
	}
	return s.value, true
}

// Store keeps value for owner in the scope, replacing what was there.
func (s *Scope) Store(owner, value any) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.owner, s.value = owner, value
	s.mu.Unlock()
}

// Forget drops owner's value, so the next Load misses: a store calls it
// after the call's own write changed what the value describes.
func (s *Scope) Forget(owner any) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.owner == owner {
		s.owner, s.value = nil, nil
	}
	s.mu.Unlock()
}
