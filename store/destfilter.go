package store

import (
	"context"
	"time"
)

// Effects of a destination filter (DESIGN.md section 6).
const (
	// FilterBlock refuses a run that would send a matching column (or, with
	// no column or level to match, any run to a matching destination).
	FilterBlock = "block"
	// FilterDrop removes a matching column from what a run sends.
	FilterDrop = "drop"
	// FilterHash sends a matching column as the SHA-256 of its normalised
	// value.
	FilterHash = "sha256"
	// FilterAllow lets a matching redacted column leave as it is.
	FilterAllow = "allow"
	// FilterAllowUnconsented lets members whose marketing_consent is not
	// true go to a matching advertising or marketing destination.
	FilterAllowUnconsented = "allow_unconsented"
	// FilterRateLimit caps the records a run sends to a matching
	// destination: Limit per run, or per hour across runs.
	FilterRateLimit = "rate_limit"
)

// Windows of a rate_limit filter.
const (
	PerRun  = "run"
	PerHour = "hour"
)

// DestinationFilter is a governance rule, set by a person, on what may
// flow to which destination. Empty match fields match anything; a filter
// matches a mapped column when its Model, Column and PIILevel all match,
// and a run when its Category, Environment and DestinationID match the
// run's destination.
type DestinationFilter struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	// Priority orders the filters, lowest first: of the sha256 and allow
	// filters matching a column, the first decides.
	Priority      int    `json:"priority"`
	Category      string `json:"category,omitempty"`
	Environment   string `json:"environment,omitempty"`
	DestinationID string `json:"destination_id,omitempty"`
	// Model is a model id; Column a column name of it, or of any model.
	Model    string `json:"model,omitempty"`
	Column   string `json:"column,omitempty"`
	PIILevel string `json:"pii_level,omitempty"`
	Effect   string `json:"effect"`
	// Limit and Per are a rate_limit's records per window.
	Limit     int64     `json:"limit,omitempty"`
	Per       string    `json:"per,omitempty"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// MatchesColumn reports whether the filter names no column matcher, so it
// is about the destination as a whole.
func (f DestinationFilter) MatchesColumn() bool {
	return f.Model != "" || f.Column != "" || f.PIILevel != ""
}

// DestinationFilters is how people manage destination filters (the
// command line and the JSON API) and how a sync run reads them. Writes
// record the call's pending audit event in their own transaction.
type DestinationFilters interface {
	// ListDestinationFilters returns the workspace's filters in priority
	// order (then by id).
	ListDestinationFilters(ctx context.Context, workspaceID string) ([]DestinationFilter, error)
	// CreateDestinationFilter stores a filter (its id assigned). Its
	// fields are checked by the caller (destinations.CheckFilter); the
	// store refuses (ErrInvalid) an effect it does not know and a
	// destination the workspace lacks.
	CreateDestinationFilter(ctx context.Context, f DestinationFilter) (DestinationFilter, error)
	// DeleteDestinationFilter deletes a filter: ErrNotFound when the
	// workspace has none with that id.
	DeleteDestinationFilter(ctx context.Context, workspaceID, id string) error
	// DestinationRecordsSince counts the records finished runs of syncs to
	// the destination sent (added, changed, removed) since a time.
	DestinationRecordsSince(ctx context.Context, workspaceID, destinationID string, since time.Time) (int64, error)
}
