package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"time"

	"github.com/signalsmith/agent-server/audience"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// maxBlastDependents caps how many dependent audiences one write counts
// (two warehouse counts each). A write that changes more of them reports
// the rest in dependents_uncounted, which the default policies send to a
// human: the cost of deciding stays bounded and nothing goes unmeasured.
const maxBlastDependents = 20

// catalog is a workspace's models and audiences, as they are or as a
// write would leave them.
type catalog struct {
	models    []store.Model
	audiences []store.Audience
}

// loadCatalog reads the caller's workspace's models and audiences.
func loadCatalog(ctx context.Context, d Deps, call *Call) (catalog, error) {
	models, err := d.Store.ListModels(ctx, call.Principal.WorkspaceID)
	if err != nil {
		return catalog{}, fmt.Errorf("list models: %w", err)
	}
	auds, err := d.Store.ListAudiences(ctx, call.Principal.WorkspaceID)
	if err != nil {
		return catalog{}, fmt.Errorf("list audiences: %w", err)
	}
	return catalog{models: models, audiences: auds}, nil
}

// withModel returns the catalog with m in place of the model with its id.
func (c catalog) withModel(m store.Model) catalog {
	out := catalog{models: make([]store.Model, len(c.models)), audiences: c.audiences}
	for i, cur := range c.models {
		if cur.ID == m.ID {
			cur = m
		}
		out.models[i] = cur
	}
	return out
}

// withAudience returns the catalog with a in place of the audience with
// its id.
func (c catalog) withAudience(a store.Audience) catalog {
	out := catalog{models: c.models, audiences: make([]store.Audience, len(c.audiences))}
	for i, cur := range c.audiences {
		if cur.ID == a.ID {
			cur = a
		}
		out.audiences[i] = cur
	}
	return out
}

func (c catalog) snapshot() *audience.Snapshot { return audience.NewSnapshot(c.models, c.audiences) }

// affected is a saved audience whose compiled query a write changes:
// before and after are nil when it does not compile then. problem says
// why it stops compiling, when the write breaks it.
type affected struct {
	aud           store.Audience
	before, after *audience.Query
	problem       string
}

// affectedAudiences compiles every saved audience over the catalog before
// and after a write, each pinned to its own model id (audience.ParseSaved),
// and returns those whose query differs: audiences over a changed model,
// over models whose relationships lead to it, and audiences that include
// or exclude a changed audience, however indirectly, since compilation
// inlines all of them. Compilation runs in memory; nothing is counted.
func affectedAudiences(dialect store.Dialect, before, after catalog, now time.Time) ([]affected, error) {
	bsnap, asnap := before.snapshot(), after.snapshot()
	prev := make(map[string]store.Audience, len(before.audiences))
	for _, a := range before.audiences {
		prev[a.ID] = a
	}
	var out []affected
	for _, a := range after.audiences {
		var bq *audience.Query
		if pa, ok := prev[a.ID]; ok {
			q, _, err := compileSaved(dialect, bsnap, pa, now)
			if err != nil {
				return nil, err
			}
			bq = q
		}
		aq, problem, err := compileSaved(dialect, asnap, a, now)
		if err != nil {
			return nil, err
		}
		if sameQuery(bq, aq) {
			continue
		}
		out = append(out, affected{aud: a, before: bq, after: aq, problem: problem})
	}
	return out, nil
}

// compileSaved compiles a saved audience over snap at now. A definition
// that does not compile there gives a nil query and the reason; any
// other error is internal.
func compileSaved(dialect store.Dialect, snap *audience.Snapshot, a store.Audience, now time.Time) (*audience.Query, string, error) {
	def, err := audience.ParseSaved(a)
	if err == nil {
		var q *audience.Query
		q, err = audience.Compile(def, snap, audience.Options{Dialect: dialect, Now: now, AudienceID: a.ID})
		if err == nil {
			return q, "", nil
		}
	}
	if errors.Is(err, store.ErrInvalid) {
		return nil, guardrails.RedactString(storeDetail(err)), nil
	}
	return nil, "", fmt.Errorf("compile audience %s: %w", a.ID, err)
}

// sameQuery reports whether two compiled audiences select the same rows
// the same way: the same SQL (which holds the models' sources) and bound
// values (nil: does not compile).
func sameQuery(a, b *audience.Query) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ca, cb := a.Count(), b.Count()
	return ca.SQL == cb.SQL && reflect.DeepEqual(ca.Args, cb.Args)
}

// syncedAudienceIDs returns the ids of the workspace's audiences that a
// sync sends, whatever the sync's state: a paused sync sends them again
// once resumed.
func syncedAudienceIDs(ctx context.Context, d Deps, call *Call) (map[string]bool, error) {
	syncs, err := d.Store.ListSyncs(ctx, call.Principal.WorkspaceID)
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	out := make(map[string]bool, len(syncs))
	for _, s := range syncs {
		out[s.AudienceID] = true
	}
	return out, nil
}

// blastFacts are the guardrail facts of a model or audience write that
// turns the catalog before into after: its effect on every other saved
// audience (written is the audience the call writes, whose own size the
// caller reports) and on every synced one. Sizes are true sizes, counted
// workspace-wide without the caller's access filters, so an agent that
// sees few rows cannot make a large change look small; they are
// aggregates and no row leaves the warehouse.
//
//   - dependents_changed: other audiences whose query the write changes;
//   - dependents_counted, dependents_uncounted: how many of those were
//     counted (at most maxBlastDependents) and how many were not;
//   - synced_audiences_changed: audiences a sync sends (the written one
//     included) whose query the write changes, so whose members may change;
//   - max_dependent_change, max_dependent_change_pct: the largest change of
//     a counted dependent's size, in members and in percent of its size
//     before (of 1 when it was empty);
//   - max_dependent_size: the largest size of a counted dependent after the
//     write;
//   - dependents: each counted dependent's id, name, size_before,
//     size_after and whether it is synced;
//   - caller_filtered: whether the caller has access filters (callerFacts
//     then hides the sizes from it).
func blastFacts(ctx context.Context, d Deps, call *Call, before, after catalog, written string, now time.Time) (map[string]any, error) {
	changed, err := affectedAudiences(call.Warehouse.Dialect(), before, after, now)
	if err != nil {
		return nil, err
	}
	synced, err := syncedAudienceIDs(ctx, d, call)
	if err != nil {
		return nil, err
	}
	var (
		deps, counted, uncounted, syncedChanged int
		maxChange, maxSize                      int64
		maxPct                                  float64
		list                                    = []guardrails.Dependent{}
	)
	for _, c := range changed {
		if synced[c.aud.ID] {
			syncedChanged++
		}
		if c.aud.ID == written {
			continue
		}
		deps++
		if counted == maxBlastDependents {
			uncounted++
			continue
		}
		counted++
		b, err := call.Warehouse.UnfilteredCount(ctx, c.before)
		if err != nil {
			return nil, err
		}
		a, err := call.Warehouse.UnfilteredCount(ctx, c.after)
		if err != nil {
			return nil, err
		}
		change := a - b
		if change < 0 {
			change = -change
		}
		pct := float64(change) * 100 / float64(max(b, 1))
		maxChange, maxSize, maxPct = max(maxChange, change), max(maxSize, a), max(maxPct, pct)
		list = append(list, guardrails.Dependent{ID: c.aud.ID, Name: c.aud.Name, SizeBefore: b, SizeAfter: a, Synced: synced[c.aud.ID]})
	}
	filtered, err := call.Warehouse.Filtered(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"caller_filtered":          filtered,
		"dependents_changed":       int64(deps),
		"dependents_counted":       int64(counted),
		"dependents_uncounted":     int64(uncounted),
		"synced_audiences_changed": int64(syncedChanged),
		"max_dependent_change":     maxChange,
		"max_dependent_change_pct": maxPct,
		"max_dependent_size":       maxSize,
		"dependents":               list,
	}, nil
}

// audienceSizeFacts are the size facts of the audience c a call would
// save: true_size counted workspace-wide without access filters,
// visible_size with the caller's, and estimated_size, the size the
// policies measure, which is the true size: a member who sees one region
// cannot have a workspace-wide audience measured by that region.
// caller_filtered says whether the caller has access filters.
func audienceSizeFacts(ctx context.Context, d Deps, call *Call, c *compiled) (map[string]any, error) {
	truth, err := call.Warehouse.UnfilteredCount(ctx, c.query)
	if err != nil {
		return nil, err
	}
	visible, err := call.Warehouse.Count(ctx, c.query)
	if err != nil {
		return nil, err
	}
	filtered, err := call.Warehouse.Filtered(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{"estimated_size": truth, "true_size": truth, "visible_size": visible, "model": c.model.Name,
		"caller_filtered": filtered}, nil
}

// The facts each tool that computes them declares (Tool.FactNames).
var (
	// audienceSizeFactNames are audienceSizeFacts' (create_audience's).
	audienceSizeFactNames = []string{"estimated_size", "true_size", "visible_size", "model", "caller_filtered"}
	// blastFactNames are blastFacts'.
	blastFactNames = []string{"caller_filtered", "dependents_changed", "dependents_counted", "dependents_uncounted",
		"synced_audiences_changed", "max_dependent_change", "max_dependent_change_pct", "max_dependent_size", "dependents"}
	// updateAudienceFactNames are updateAudienceFacts'.
	updateAudienceFactNames = factNames(audienceSizeFactNames, []string{"previous_size", "size_change"}, blastFactNames)
	// updateModelFactNames are updateModelFacts'.
	updateModelFactNames = factNames(blastFactNames, []string{"model"})
)

// factNames joins lists of fact names, each name once.
func factNames(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, n := range l {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// callerFacts are the facts a caller may read back (check_action, a
// tool's result). A caller with access filters (caller_filtered) does not
// get the facts counted beyond them (guardrails.Fact.Unfiltered), which
// only the guardrails and the human who reviews the call see: otherwise
// counts of ever narrower audiences would tell it about the rows its
// filters keep from it. A fact without a declaration is hidden too.
func callerFacts(facts map[string]any) map[string]any {
	if facts["caller_filtered"] != true {
		return facts
	}
	return withoutUnfiltered(facts)
}

// withoutUnfiltered returns facts without those counted beyond access
// filters, and hidden_facts naming them.
func withoutUnfiltered(facts map[string]any) map[string]any {
	out := make(map[string]any, len(facts))
	var hidden []string
	for k, v := range facts {
		if f, ok := guardrails.LookupFact(k); !ok || f.Unfiltered {
			hidden = append(hidden, k)
			continue
		}
		out[k] = v
	}
	sort.Strings(hidden)
	out["hidden_facts"] = hidden
	return out
}

// modelDependents returns what a model update from cur to next would
// break, as an *store.InUseError the caller turns into a refusal: saved
// audiences that would no longer compile (a condition on a dropped or
// retyped column, a relationship that is gone), and, when the source
// changes (another table or SQL), the audiences over the model that syncs
// send, with those syncs, whose members would change unreviewed. It
// returns nil when nothing breaks.
func modelDependents(ctx context.Context, d Deps, call *Call, cur, next store.Model, before catalog) error {
	changed, err := affectedAudiences(call.Warehouse.Dialect(), before, before.withModel(next), time.Now())
	if err != nil {
		return err
	}
	var deps []store.Dependent
	for _, c := range changed {
		if c.before != nil && c.after == nil {
			deps = append(deps, store.Dependent{Type: "audience", ID: c.aud.ID, Name: c.aud.Name,
				Why: "it would no longer be valid: " + c.problem})
		}
	}
	if next.Table != cur.Table || next.SQL != cur.SQL {
		syncs, err := d.Store.ListSyncs(ctx, call.Principal.WorkspaceID)
		if err != nil {
			return fmt.Errorf("list syncs: %w", err)
		}
		for _, a := range before.audiences {
			if a.ModelID != cur.ID {
				continue
			}
			first := true
			for _, s := range syncs {
				if s.AudienceID != a.ID {
					continue
				}
				if first {
					deps = append(deps, store.Dependent{Type: "audience", ID: a.ID, Name: a.Name,
						Why: "a synced audience over the model: its source cannot change while syncs send it"})
					first = false
				}
				deps = append(deps, store.Dependent{Type: "sync", ID: s.ID, Name: s.ID, Why: "syncs audience " + a.Name})
			}
		}
	}
	if len(deps) == 0 {
		return nil
	}
	return &store.InUseError{Object: "model " + cur.Name, Dependents: deps}
}

// refuseIDName refuses a name that looks like an id (store.LooksLikeID):
// references in the id form are looked up by id only, so the name would
// never be found by it and would mislead whoever reads it.
func refuseIDName(field, name string) error {
	if prefix, ok := store.LooksLikeID(name); ok {
		return Errorf("invalid argument %q: %q looks like an id (it starts with %s); choose a name that does not", field, guardrails.RedactString(name), prefix)
	}
	return nil
}

// updateAudienceFacts are update_audience's facts: the audience's size
// facts after the update (audienceSizeFacts; with no new definition, as it
// is), previous_size and size_change (true sizes), and the blast facts of
// the update on the audiences that include or exclude it (blastFacts).
func updateAudienceFacts(ctx context.Context, d Deps, call *Call, args updateAudienceArgs) (map[string]any, error) {
	cur, err := d.Store.GetAudience(ctx, call.Principal.WorkspaceID, args.Audience)
	if err != nil {
		return nil, notFound(err, "audience", args.Audience, "list_audiences")
	}
	if args.Name != nil {
		if err := refuseIDName("name", *args.Name); err != nil {
			return nil, err
		}
	}
	prev, err := compileStored(ctx, d, call, cur)
	if err != nil {
		return nil, err
	}
	next, after := prev, cur
	if len(args.Definition) > 0 {
		if next, err = compileAudience(ctx, d, call, args.Definition, cur.ID); err != nil {
			return nil, err
		}
		if next.model.ID != cur.ModelID {
			return nil, Errorf("the definition is over model %s, but the audience is over another model: create a new audience instead", next.model.Name)
		}
		after.Definition = next.canon
	}
	facts, err := audienceSizeFacts(ctx, d, call, next)
	if err != nil {
		return nil, err
	}
	previous := facts["true_size"].(int64)
	if next != prev {
		if previous, err = call.Warehouse.UnfilteredCount(ctx, prev.query); err != nil {
			return nil, err
		}
	}
	facts["previous_size"], facts["size_change"] = previous, facts["true_size"].(int64)-previous
	before, err := loadCatalog(ctx, d, call)
	if err != nil {
		return nil, err
	}
	blast, err := blastFacts(ctx, d, call, before, before.withAudience(after), cur.ID, time.Now())
	if err != nil {
		return nil, err
	}
	for k, v := range blast {
		facts[k] = v
	}
	return facts, nil
}

// checkModelDependents refuses a model update from cur to next that would
// break what depends on the model (modelDependents), naming each
// dependent and why.
func checkModelDependents(ctx context.Context, d Deps, call *Call, cur, next store.Model) error {
	before, err := loadCatalog(ctx, d, call)
	if err != nil {
		return err
	}
	return refusal(cur, modelDependents(ctx, d, call, cur, next, before))
}

// refusal turns an *store.InUseError of a model update into the error the
// model reads; any other error passes through.
func refusal(cur store.Model, err error) error {
	var inUse *store.InUseError
	if errors.As(err, &inUse) {
		return modelInUse(cur, inUse)
	}
	return err
}

// modelInUse is the refusal of a model update that would break its
// dependents: it names each one and why.
func modelInUse(cur store.Model, e *store.InUseError) error {
	return Errorf("model %s was not changed: the change would break %s. Change or delete those first, or keep the source, name, columns and relationships they use",
		cur.Name, dependents(e))
}

// updateModelFacts are update_model's facts: the model's name and the
// blast facts of the update (blastFacts) on the audiences built on it. An
// update that would break dependents is refused here already, so it is
// never queued for a human.
func updateModelFacts(ctx context.Context, d Deps, call *Call, raw json.RawMessage) (map[string]any, error) {
	var args updateModelArgs
	cur, err := loadModel(ctx, d, call, raw, &args)
	if err != nil {
		return nil, err
	}
	next, err := nextModel(ctx, d, call, cur, args)
	if err != nil {
		return nil, err
	}
	before, err := loadCatalog(ctx, d, call)
	if err != nil {
		return nil, err
	}
	if err := refusal(cur, modelDependents(ctx, d, call, cur, next, before)); err != nil {
		return nil, err
	}
	facts, err := blastFacts(ctx, d, call, before, before.withModel(next), "", time.Now())
	if err != nil {
		return nil, err
	}
	facts["model"] = cur.Name
	return facts, nil
}
