package audience

import (
	"context"
	"fmt"
	"sort"

	"github.com/signalsmith/agent-server/store"
)

// Compile-time check that Snapshot is a Catalog.
var _ Catalog = (*Snapshot)(nil)

// Snapshot is a Catalog over models and audiences read once, for example
// at the start of a tool call: validation and compilation then see one
// consistent state of the workspace. It is safe for concurrent use once
// built.
type Snapshot struct {
	models    map[string]store.Model // by name and by id
	names     []string
	audiences map[string]store.Audience
}

// NewSnapshot returns a Snapshot of these models and audiences. Models are
// found by id or, failing that, by name; audiences by id.
func NewSnapshot(models []store.Model, audiences []store.Audience) *Snapshot {
	s := &Snapshot{
		models:    make(map[string]store.Model, 2*len(models)),
		audiences: make(map[string]store.Audience, len(audiences)),
	}
	for _, m := range models {
		if m.Name != "" {
			s.models[m.Name] = m
			s.names = append(s.names, m.Name)
		}
	}
	// Ids go in last: a model named like another model's id must not
	// stand in for that model.
	for _, m := range models {
		if m.ID != "" {
			s.models[m.ID] = m
		}
	}
	sort.Strings(s.names)
	for _, a := range audiences {
		s.audiences[a.ID] = a
	}
	return s
}

// Lister is the part of store.Store LoadSnapshot reads.
type Lister interface {
	ListModels(ctx context.Context, workspaceID string) ([]store.Model, error)
	ListAudiences(ctx context.Context, workspaceID string) ([]store.Audience, error)
}

// LoadSnapshot reads a workspace's models and audiences from a store.
func LoadSnapshot(ctx context.Context, s Lister, workspaceID string) (*Snapshot, error) {
	models, err := s.ListModels(ctx, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("load audience catalog: %w", err)
	}
	audiences, err := s.ListAudiences(ctx, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("load audience catalog: %w", err)
	}
	return NewSnapshot(models, audiences), nil
}

// Model returns the model with this name or id, or an error wrapping
// store.ErrNotFound.
func (s *Snapshot) Model(nameOrID string) (store.Model, error) {
	m, ok := s.models[nameOrID]
	if !ok {
		return store.Model{}, fmt.Errorf("model %q: %w", nameOrID, store.ErrNotFound)
	}
	return m, nil
}

// Audience returns the audience with this id, or an error wrapping
// store.ErrNotFound.
func (s *Snapshot) Audience(id string) (store.Audience, error) {
	a, ok := s.audiences[id]
	if !ok {
		return store.Audience{}, fmt.Errorf("audience %q: %w", id, store.ErrNotFound)
	}
	return a, nil
}

// ModelNames returns the models' names, sorted, for suggestions.
func (s *Snapshot) ModelNames() []string {
	return append([]string(nil), s.names...)
}
