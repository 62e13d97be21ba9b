package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/signalsmith/agent-server/audience"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// The Resolve hooks of the model and audience tools. The gate calls them
// before it queues a call for a human, and again before an approved call
// runs; they load what the arguments name with the caller's view of the
// workspace, refuse what the handler would refuse for a missing or blocked
// object, and rewrite every model and audience reference to its id, so an
// approval never runs against whatever carries a name by then.

// modelPin is how an approval pins a model.
func modelPin(m store.Model) store.ApprovalPin {
	return store.ApprovalPin{Type: "model", ID: m.ID, Name: m.Name, Version: m.Version}
}

// audiencePin is how an approval pins an audience.
func audiencePin(a store.Audience) store.ApprovalPin {
	return store.ApprovalPin{Type: "audience", ID: a.ID, Name: a.Name, Version: a.Version}
}

// pinSet merges pins into one list without duplicates, ordered by type and
// id, so the same objects always make the same list.
func pinSet(lists ...[]store.ApprovalPin) []store.ApprovalPin {
	var out []store.ApprovalPin
	for _, l := range lists {
		for _, p := range l {
			if !slices.ContainsFunc(out, func(q store.ApprovalPin) bool { return q.Type == p.Type && q.ID == p.ID }) {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b store.ApprovalPin) int {
		return strings.Compare(a.Type+" "+a.ID, b.Type+" "+b.ID)
	})
	return out
}

// recorder is an audience catalog that remembers the models and audiences
// validation and compilation looked up: what a definition is built on,
// included audiences and the models their relationships lead to as well.
type recorder struct {
	*audience.Snapshot
	seen []store.ApprovalPin
}

// Model looks a model up and records it.
func (r *recorder) Model(nameOrID string) (store.Model, error) {
	m, err := r.Snapshot.Model(nameOrID)
	if err == nil {
		r.seen = append(r.seen, modelPin(m))
	}
	return m, err
}

// Audience looks an audience up and records it.
func (r *recorder) Audience(id string) (store.Audience, error) {
	a, err := r.Snapshot.Audience(id)
	if err == nil {
		r.seen = append(r.seen, audiencePin(a))
	}
	return a, err
}

// pinned returns what was looked up.
func (r *recorder) pinned() []store.ApprovalPin { return pinSet(r.seen) }

// withIDs returns the arguments raw with set applied to them as a JSON
// object. Numbers keep their exact text.
func withIDs(raw json.RawMessage, set func(obj map[string]any)) (json.RawMessage, error) {
	obj := map[string]any{}
	if t := bytes.TrimSpace(raw); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil || obj == nil {
			return nil, Errorf("invalid arguments: expected a JSON object matching the tool's input schema")
		}
	}
	set(obj)
	return json.Marshal(obj)
}

// definitionWithModelID returns an audience definition with its parent
// model named by id.
func definitionWithModelID(def json.RawMessage, id string) (json.RawMessage, error) {
	return withIDs(def, func(obj map[string]any) { obj["model"] = id })
}

// modelReferrer is the arguments of a tool with a "model" argument.
type modelReferrer interface{ modelRef() string }

// resolveModel is the Resolve of tools whose "model" argument names the
// one model they act on; newArgs returns their arguments' type. With
// deleting set it also refuses a model that audiences, syncs or other
// models depend on, as delete_model would.
func resolveModel(d Deps, newArgs func() modelReferrer, deleting bool) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		m, err := loadModel(ctx, d, call, raw, newArgs())
		if err != nil {
			return Resolved{}, err
		}
		if deleting {
			deps, err := d.Store.ModelDependents(ctx, call.Principal.WorkspaceID, m.ID)
			if err != nil {
				return Resolved{}, notFound(err, "model", m.ID, "list_models")
			}
			if len(deps) > 0 {
				return Resolved{}, Errorf("model %s cannot be deleted: %s depend on it. Delete or change them first (list_audiences, list_syncs and get_model show them), then try again",
					m.Name, dependents(&store.InUseError{Dependents: deps}))
			}
		}
		args, err := withIDs(raw, func(obj map[string]any) { obj["model"] = m.ID })
		return Resolved{Args: args, Pins: []store.ApprovalPin{modelPin(m)}}, err
	}
}

// resolveCreateModel is create_model's Resolve: the models its
// relationships lead to, and a name no model has yet.
func resolveCreateModel(d Deps) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		var args createModelArgs
		if err := decode(raw, &args); err != nil {
			return Resolved{}, err
		}
		if err := required("name", args.Name); err != nil {
			return Resolved{}, err
		}
		switch m, err := d.Store.GetModel(ctx, call.Principal.WorkspaceID, args.Name); {
		case err == nil && m.Name == args.Name:
			return Resolved{}, Errorf("a model named %q exists already: choose another name, or change that model with update_model", args.Name)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return Resolved{}, err
		}
		rels, pins, err := relationshipTargets(ctx, d, call, args.Relationships, "", args.Name)
		if err != nil {
			return Resolved{}, err
		}
		out, err := withIDs(raw, func(obj map[string]any) {
			if len(rels) > 0 {
				obj["relationships"] = rels
			}
		})
		return Resolved{Args: out, Pins: pins}, err
	}
}

// resolveUpdateModel is update_model's Resolve: the model and the models
// the new relationships lead to.
func resolveUpdateModel(d Deps) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		var args updateModelArgs
		m, err := loadModel(ctx, d, call, raw, &args)
		if err != nil {
			return Resolved{}, err
		}
		pins := []store.ApprovalPin{modelPin(m)}
		var rels []relationshipArg
		if args.Relationships != nil {
			self := []string{m.Name}
			if args.Name != nil {
				self = append(self, *args.Name)
			}
			var relPins []store.ApprovalPin
			if rels, relPins, err = relationshipTargets(ctx, d, call, *args.Relationships, m.ID, self...); err != nil {
				return Resolved{}, err
			}
			pins = pinSet(pins, relPins)
		}
		out, err := withIDs(raw, func(obj map[string]any) {
			obj["model"] = m.ID
			if args.Relationships != nil {
				obj["relationships"] = rels
			}
		})
		return Resolved{Args: out, Pins: pins}, err
	}
}

// relationshipTargets names the related model of every relationship by
// its id and returns those models' pins. A relationship to the model itself
// (one of its names, selfID) leads to selfID, or keeps its name for a model
// not created yet (selfID "").
func relationshipTargets(ctx context.Context, d Deps, call *Call, rels []relationshipArg, selfID string, selfNames ...string) ([]relationshipArg, []store.ApprovalPin, error) {
	out := make([]relationshipArg, len(rels))
	var pins []store.ApprovalPin
	for i, r := range rels {
		out[i] = r
		if slices.Contains(selfNames, r.Model) || (selfID != "" && r.Model == selfID) {
			if selfID != "" {
				out[i].Model = selfID
			}
			continue
		}
		if r.Model == "" {
			continue // the handler says what is missing
		}
		other, err := d.Store.GetModel(ctx, call.Principal.WorkspaceID, r.Model)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, Errorf("relationship %q: model %q not found: call list_models to see the available ones", r.Name, guardrails.RedactString(r.Model))
		}
		if err != nil {
			return nil, nil, err
		}
		out[i].Model = other.ID
		pins = append(pins, modelPin(other))
	}
	return out, pinSet(pins), nil
}

// resolveAudience is the Resolve of tools whose "audience" argument names
// the one audience they act on. With deleting set it also refuses an
// audience a sync or another audience depends on, as delete_audience would.
func resolveAudience(d Deps, deleting bool) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		a, err := loadAudience(ctx, d, call, raw)
		if err != nil {
			return Resolved{}, err
		}
		if deleting {
			deps, err := d.Store.AudienceDependents(ctx, call.Principal.WorkspaceID, a.ID)
			if err != nil {
				return Resolved{}, notFound(err, "audience", a.ID, "list_audiences")
			}
			if len(deps) > 0 {
				return Resolved{}, Errorf("audience %s cannot be deleted: %s depend on it. Delete or change them first, then try again",
					guardrails.RedactString(a.Name), dependents(&store.InUseError{Dependents: deps}))
			}
		}
		args, err := withIDs(raw, func(obj map[string]any) { obj["audience"] = a.ID })
		return Resolved{Args: args, Pins: []store.ApprovalPin{audiencePin(a)}}, err
	}
}

// resolveListAudiences is list_audiences' Resolve: the model it filters
// by, when it names one.
func resolveListAudiences(d Deps) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		var args listAudiencesArgs
		if err := decode(raw, &args); err != nil {
			return Resolved{}, err
		}
		if args.Model == "" {
			out, err := withIDs(raw, func(map[string]any) {})
			return Resolved{Args: out}, err
		}
		m, err := d.Store.GetModel(ctx, call.Principal.WorkspaceID, args.Model)
		if err != nil {
			return Resolved{}, notFound(err, "model", args.Model, "list_models")
		}
		out, err := withIDs(raw, func(obj map[string]any) { obj["model"] = m.ID })
		return Resolved{Args: out, Pins: []store.ApprovalPin{modelPin(m)}}, err
	}
}

// resolvePreviewAudience is preview_audience's Resolve: the saved audience
// or the draft definition, and what either is built on.
func resolvePreviewAudience(d Deps) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		var args previewAudienceArgs
		if err := decode(raw, &args); err != nil {
			return Resolved{}, err
		}
		switch {
		case args.Audience != "" && len(args.Definition) > 0:
			return Resolved{}, Errorf("give either audience or definition, not both")
		case args.Audience != "":
			a, err := d.Store.GetAudience(ctx, call.Principal.WorkspaceID, args.Audience)
			if err != nil {
				return Resolved{}, notFound(err, "audience", args.Audience, "list_audiences")
			}
			c, err := compileAudience(ctx, d, call, a.Definition, a.ID)
			if err != nil {
				return Resolved{}, err
			}
			out, err := withIDs(raw, func(obj map[string]any) { obj["audience"] = a.ID })
			return Resolved{Args: out, Pins: pinSet([]store.ApprovalPin{audiencePin(a)}, c.pins)}, err
		case len(args.Definition) == 0:
			return Resolved{}, Errorf("missing argument: give audience (a saved audience's id) or definition")
		}
		c, err := compileAudience(ctx, d, call, args.Definition, "")
		if err != nil {
			return Resolved{}, err
		}
		def, err := definitionWithModelID(args.Definition, c.model.ID)
		if err != nil {
			return Resolved{}, err
		}
		out, err := withIDs(raw, func(obj map[string]any) { obj["definition"] = def })
		return Resolved{Args: out, Pins: c.pins}, err
	}
}

// resolveCreateAudience is create_audience's Resolve: what the definition
// is built on, and a name no audience has yet.
func resolveCreateAudience(d Deps) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		var args createAudienceArgs
		if err := decode(raw, &args); err != nil {
			return Resolved{}, err
		}
		if err := required("name", args.Name); err != nil {
			return Resolved{}, err
		}
		c, err := compileAudience(ctx, d, call, args.Definition, "")
		if err != nil {
			return Resolved{}, err
		}
		all, err := d.Store.ListAudiences(ctx, call.Principal.WorkspaceID)
		if err != nil {
			return Resolved{}, err
		}
		if slices.ContainsFunc(all, func(a store.Audience) bool { return a.Name == args.Name }) {
			return Resolved{}, storeError(store.ErrConflict, "audience", args.Name)
		}
		def, err := definitionWithModelID(args.Definition, c.model.ID)
		if err != nil {
			return Resolved{}, err
		}
		out, err := withIDs(raw, func(obj map[string]any) { obj["definition"] = def })
		return Resolved{Args: out, Pins: c.pins}, err
	}
}

// resolveUpdateAudience is update_audience's Resolve: the audience, and
// what its definition (the new one, or else the current one) is built on.
func resolveUpdateAudience(d Deps) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		var args updateAudienceArgs
		if err := decode(raw, &args); err != nil {
			return Resolved{}, err
		}
		if err := required("audience", args.Audience); err != nil {
			return Resolved{}, err
		}
		a, err := d.Store.GetAudience(ctx, call.Principal.WorkspaceID, args.Audience)
		if err != nil {
			return Resolved{}, notFound(err, "audience", args.Audience, "list_audiences")
		}
		def := args.Definition
		if len(def) == 0 {
			def = a.Definition
		}
		c, err := compileAudience(ctx, d, call, def, a.ID)
		if err != nil {
			return Resolved{}, err
		}
		if c.model.ID != a.ModelID {
			return Resolved{}, Errorf("the definition is over model %s, but the audience is over another model: create a new audience instead", c.model.Name)
		}
		var newDef json.RawMessage
		if len(args.Definition) > 0 {
			if newDef, err = definitionWithModelID(args.Definition, c.model.ID); err != nil {
				return Resolved{}, err
			}
		}
		out, err := withIDs(raw, func(obj map[string]any) {
			obj["audience"] = a.ID
			if newDef != nil {
				obj["definition"] = newDef
			}
		})
		return Resolved{Args: out, Pins: pinSet([]store.ApprovalPin{audiencePin(a)}, c.pins)}, err
	}
}
