package store

import (
	"context"
	"time"
)

// SyncRuns holds the runs of syncs (SyncRun, delivery.go) and the lease
// that keeps two runs of one sync from overlapping, across processes.
type SyncRuns interface {
	// AcquireSyncLease gives holder the sync's lease until now+ttl when
	// nobody holds it, its lease ran out, or holder holds it already (a
	// renewal). It returns ErrConflict while another holder's lease runs.
	AcquireSyncLease(ctx context.Context, workspaceID, syncID, holder string, now time.Time, ttl time.Duration) error
	// ReleaseSyncLease ends holder's lease of the sync; a lease that is
	// not holder's is left alone, and none is no error.
	ReleaseSyncLease(ctx context.Context, workspaceID, syncID, holder string) error
	// CreateSyncRun stores a new run, assigning its id (run_ + UUIDv7)
	// when empty. It returns ErrInvalid for a sync the workspace lacks or
	// an unknown state.
	CreateSyncRun(ctx context.Context, r SyncRun) (SyncRun, error)
	// UpdateSyncRun replaces a run's state, counts, last batch, error and
	// finish time; ErrNotFound for an unknown run.
	UpdateSyncRun(ctx context.Context, r SyncRun) error
	// GetSyncRun returns one run of the workspace; ErrNotFound if none.
	GetSyncRun(ctx context.Context, workspaceID, id string) (SyncRun, error)
	// ListSyncRuns returns a sync's runs, newest first, at most limit
	// (all when limit is 0 or less).
	ListSyncRuns(ctx context.Context, workspaceID, syncID string, limit int) ([]SyncRun, error)
}
