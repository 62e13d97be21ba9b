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
	byID      map[string]store.Model
	byName    map[string]store.Model
	names     []string
	audiences map[string]store.Audience
}

// NewSnapshot returns a Snapshot of these models and audiences. Models are
// found by id when the reference has the form of a model id
// (store.IsModelID), by name otherwise; audiences by id.
func NewSnapshot(models []store.Model, audiences []store.Audience) *Snapshot {
	s := &Snapshot{
		byID:      make(map[string]store.Model, len(models)),
		byName:    make(map[string]store.Model, len(models)),
		audiences: make(map[string]store.Audience, len(audiences)),
	}
	for _, m := range models {
		if m.ID != "" {
			s.byID[m.ID] = m
		}
		if m.Name != "" {
			s.byName[m.Name] = m
			s.names = append(s.names, m.Name)
		}
	}
	sort.Strings(s.names)
	for _, a := range audiences {
		s.audiences[a.ID] = a
	}
	return s
}

// Lister is the part of store.Catalog LoadSnapshot reads.
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

// Model returns the model with this id, when nameOrID has the form of a
// model id, else the model with this name: never the other way round, so a
// model named like another model's id cannot stand in for it. An unknown
// model is an error wrapping store.ErrNotFound.
func (s *Snapshot) Model(nameOrID string) (store.Model, error) {
	models := s.byName
	if store.IsModelID(nameOrID) {
		models = s.byID
	}
	m, ok := models[nameOrID]
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

// ParseSaved parses a saved audience's definition with its parent model
// pinned to the audience's model id. A definition names its model as its
// author wrote it, often by name; the audience is over the model with
// ModelID whatever that model is called now, so a model renamed, and
// another created under the old name, never changes what a saved audience
// means.
func ParseSaved(a store.Audience) (*Definition, error) {
	def, err := Parse(a.Definition)
	if err != nil {
		return nil, err
	}
	if a.ModelID != "" {
		def.Model = a.ModelID
	}
	return def, nil
}
