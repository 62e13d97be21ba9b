package activation

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// ConsentColumn is the boolean model column whose true value lets a member
// go to an advertising or marketing destination.
const ConsentColumn = "marketing_consent"

// FilterStore is what FilterGovernance reads: the workspace's destination
// filters, and what was sent to a destination lately (for hourly rate
// limits).
type FilterStore interface {
	ListDestinationFilters(ctx context.Context, workspaceID string) ([]store.DestinationFilter, error)
	DestinationRecordsSince(ctx context.Context, workspaceID, destinationID string, since time.Time) (int64, error)
}

// FilterGovernance is the Governance of DESIGN.md section 6: PII levels
// and the destination filters people set, with every violation audited.
//
// Each mapped column starts from its PII level: blocked or unclassified
// refuses the run, redacted leaves hashed, sync_only and none as they
// are. Then every filter matching the run's destination (category,
// environment, id) and the column (model, column, level) applies: a
// block refuses the run with the filter's reason, whatever else matches;
// a drop removes the field; of the sha256 and allow filters, the one of
// lowest priority decides between hashed and, for a redacted column, as
// it is. A block matching no column refuses every run to the
// destination. Members whose marketing_consent is not true never go to
// an advertising or marketing destination (FieldPlan.RequireTrue) unless
// an allow_unconsented filter matches it; a model without that column
// cannot sync there otherwise. Rate limits cap the records of a run
// (FieldPlan.MaxRecords): the smallest of the matching per-run limits and
// of the matching hourly limits less what finished runs sent to the
// destination in the last hour.
//
// A refused run and every dropped field are audit events (source SYSTEM,
// action syncs.trigger, resource the sync, rules the filter ids); if the
// event cannot be written the run is refused, so no violation goes
// unrecorded.
type FilterGovernance struct {
	Filters FilterStore
	Audit   store.AuditAppender
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Plan decides the run's fields, skip rule and record cap.
func (g FilterGovernance) Plan(ctx context.Context, in PlanInput) (FieldPlan, error) {
	if g.Filters == nil || g.Audit == nil {
		return FieldPlan{}, fmt.Errorf("destination filters: a filter store and an audit log are required")
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	all, err := g.Filters.ListDestinationFilters(ctx, in.Sync.WorkspaceID)
	if err != nil {
		return FieldPlan{}, fmt.Errorf("destination filters: %w", err)
	}
	var filters []store.DestinationFilter
	for _, f := range all {
		if matchesDestination(f, in.Destination) {
			filters = append(filters, f)
		}
	}
	var plan FieldPlan
	var blocks, drops []store.DestinationFilter
	var dropped []string
	consent := in.Destination.Category == "advertising" || in.Destination.Category == "marketing"
	for _, f := range filters {
		switch {
		case f.Effect == store.FilterBlock && !f.MatchesColumn():
			blocks = append(blocks, f)
		case f.Effect == store.FilterAllowUnconsented:
			consent = false
		case f.Effect == store.FilterRateLimit:
			limit := f.Limit
			if f.Per == store.PerHour {
				sent, err := g.Filters.DestinationRecordsSince(ctx, in.Sync.WorkspaceID, in.Destination.ID, now().Add(-time.Hour))
				if err != nil {
					return FieldPlan{}, fmt.Errorf("destination filters: %w", err)
				}
				limit = max(0, limit-sent)
			}
			if plan.MaxRecords == nil || limit < *plan.MaxRecords {
				plan.MaxRecords = &limit
			}
		}
	}
	for i, m := range in.Sync.Mappings {
		f, col, err := levelField(i, m, in.Model)
		if err != nil {
			return FieldPlan{}, err
		}
		decided, drop := false, false
		for _, r := range filters {
			if !r.MatchesColumn() || !matchesColumn(r, in.Model, col) {
				continue
			}
			switch r.Effect {
			case store.FilterBlock:
				blocks = append(blocks, r)
			case store.FilterDrop:
				drops, drop = append(drops, r), true
			case store.FilterHash:
				if !decided {
					f.Transform, decided = TransformSHA256, true
				}
			case store.FilterAllow:
				if !decided {
					f.Transform, decided = TransformNone, true
				}
			}
		}
		if drop {
			f.Transform = TransformDrop
			dropped = append(dropped, col.Name)
		}
		// No filter un-hashes what the mapping hashes.
		if err := ownTransform(&f, i, m); err != nil {
			return FieldPlan{}, err
		}
		plan.Fields = append(plan.Fields, f)
	}
	if len(blocks) > 0 {
		b := blocks[0]
		for _, x := range blocks[1:] {
			if x.Priority < b.Priority || x.Priority == b.Priority && x.ID < b.ID {
				b = x
			}
		}
		reason := fmt.Sprintf("destination filter %s blocks this sync to %s (%s)", b.ID, in.Destination.Name, b.Reason)
		if err := g.record(ctx, in, now(), store.DecisionDenied, ids(blocks), reason, ""); err != nil {
			return FieldPlan{}, err
		}
		return FieldPlan{}, refusef("%s: change the mappings or ask a person who manages governance", reason)
	}
	if consent {
		col, ok := in.Model.Column(ConsentColumn)
		if !ok || col.Type != "boolean" {
			reason := fmt.Sprintf("model %s has no boolean %s column: its members' consent is unknown, so it cannot sync to %s destination %s",
				in.Model.Name, ConsentColumn, in.Destination.Category, in.Destination.Name)
			if err := g.record(ctx, in, now(), store.DecisionDenied, nil, reason, ""); err != nil {
				return FieldPlan{}, err
			}
			return FieldPlan{}, refusef("%s: sync a model with consent, or ask a person who manages governance for an allow_unconsented filter", reason)
		}
		plan.RequireTrue = []string{ConsentColumn}
	}
	if len(drops) > 0 {
		if err := g.record(ctx, in, now(), store.DecisionAllowed, ids(drops), "destination filters drop fields", "dropped "+strings.Join(dropped, ", ")); err != nil {
			return FieldPlan{}, err
		}
	}
	return plan, nil
}

// record writes one governance event of the sync's run; an event that
// cannot be written refuses the run.
func (g FilterGovernance) record(ctx context.Context, in PlanInput, at time.Time, decision string, rules []string, reason, result string) error {
	ev := store.AuditEvent{At: at.UTC(), WorkspaceID: in.Sync.WorkspaceID, ActorType: "system", ActorID: "system",
		Source: store.SourceSystem, Action: "syncs.trigger", ResourceType: "sync", ResourceID: in.Sync.ID,
		Decision: decision, Rules: rules, Reason: reason, Result: result,
		Args: map[string]any{"destination": in.Destination.ID, "model": in.Model.ID}}
	if err := g.Audit.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		return fmt.Errorf("destination filters: the governance event could not be recorded: %w", err)
	}
	return nil
}

// matchesDestination reports whether a filter's destination matchers hold
// for d.
func matchesDestination(f store.DestinationFilter, d store.Destination) bool {
	return (f.Category == "" || f.Category == d.Category) &&
		(f.Environment == "" || f.Environment == d.Environment) &&
		(f.DestinationID == "" || f.DestinationID == d.ID)
}

// matchesColumn reports whether a filter's column matchers hold for a
// column of m.
func matchesColumn(f store.DestinationFilter, m store.Model, c store.Column) bool {
	return (f.Model == "" || f.Model == m.ID) &&
		(f.Column == "" || f.Column == c.Name) &&
		(f.PIILevel == "" || f.PIILevel == c.PII)
}

// ids lists the filters' ids, as an audit event's rules.
func ids(fs []store.DestinationFilter) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = "destination_filter:" + f.ID
	}
	return out
}
