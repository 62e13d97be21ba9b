package destinations

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unicode"

	"github.com/signalsmith/agent-server/store"
)

// FilterCatalog is what CheckFilter looks names up in.
type FilterCatalog interface {
	GetDestination(ctx context.Context, workspaceID, id string) (store.Destination, error)
	GetModel(ctx context.Context, workspaceID, idOrName string) (store.Model, error)
	ListModels(ctx context.Context, workspaceID string) ([]store.Model, error)
}

// Effects lists the effects a destination filter may have.
var Effects = []string{store.FilterBlock, store.FilterDrop, store.FilterHash, store.FilterAllow,
	store.FilterAllowUnconsented, store.FilterRateLimit}

// CheckFilter checks a destination filter a person wrote against the
// workspace's catalog and returns it as it is stored (its model as an
// id). Errors wrap store.ErrInvalid and say what to fix; a destination of
// another workspace is one the workspace lacks.
func CheckFilter(ctx context.Context, c FilterCatalog, f store.DestinationFilter) (store.DestinationFilter, error) {
	switch {
	case !slices.Contains(Effects, f.Effect):
		return f, invalid("effect %q is not one of %s", bounded(f.Effect), strings.Join(Effects, ", "))
	case f.Category != "" && !slices.Contains(Categories, f.Category):
		return f, invalid("category %q is not one of %s", bounded(f.Category), strings.Join(Categories, ", "))
	case f.Environment != "" && !slices.Contains(Environments, f.Environment):
		return f, invalid("environment %q is not production or sandbox", bounded(f.Environment))
	case f.PIILevel != "" && !store.ValidPIILevel(f.PIILevel):
		return f, invalid("pii level %q is not none, redacted, sync_only or blocked", bounded(f.PIILevel))
	case strings.TrimSpace(f.Reason) == "" || len(f.Reason) > 500 || strings.IndexFunc(f.Reason, unicode.IsControl) >= 0:
		return f, invalid("a reason of 1 to 500 characters, on one line, is required: it is what a refused run says")
	}
	if f.DestinationID != "" {
		if _, err := c.GetDestination(ctx, f.WorkspaceID, f.DestinationID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return f, invalid("destination %q is not a destination of this workspace", bounded(f.DestinationID))
			}
			return f, err
		}
	}
	if f.Model != "" {
		m, err := c.GetModel(ctx, f.WorkspaceID, f.Model)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return f, invalid("model %q is not a model of this workspace", bounded(f.Model))
			}
			return f, err
		}
		f.Model = m.ID
		if _, ok := m.Column(f.Column); f.Column != "" && !ok {
			return f, invalid("column %q is not a column of model %s", bounded(f.Column), m.Name)
		}
	} else if f.Column != "" {
		models, err := c.ListModels(ctx, f.WorkspaceID)
		if err != nil {
			return f, err
		}
		if !slices.ContainsFunc(models, func(m store.Model) bool { _, ok := m.Column(f.Column); return ok }) {
			return f, invalid("column %q is not a column of any model", bounded(f.Column))
		}
	}
	switch f.Effect {
	case store.FilterRateLimit:
		if f.Limit < 1 || (f.Per != store.PerRun && f.Per != store.PerHour) {
			return f, invalid("a rate_limit needs a limit of 1 or more records per run or per hour")
		}
	default:
		if f.Limit != 0 || f.Per != "" {
			return f, invalid("only a rate_limit has a limit")
		}
	}
	switch f.Effect {
	case store.FilterDrop, store.FilterHash, store.FilterAllow:
		if !f.MatchesColumn() {
			return f, invalid("a %s filter applies to columns: give a column, a model or a pii level", f.Effect)
		}
	case store.FilterRateLimit, store.FilterAllowUnconsented:
		if f.MatchesColumn() {
			return f, invalid("a %s filter applies to a destination as a whole: give no column, model or pii level", f.Effect)
		}
	}
	if f.Effect == store.FilterAllow && f.PIILevel == store.PIIBlocked {
		return f, invalid("blocked columns can never leave the warehouse: no filter allows them")
	}
	return f, nil
}
