package store

import (
	"context"
	"errors"
	"time"
)

// Delivery: what a sync run sends to a destination and what the
// destination says back (DESIGN.md sections 3 and 9). The sync engine
// builds batches; a Sender, made from a destination and its decrypted
// credentials, delivers them. Both sides meet only through these types.

// Operations of a SyncRecord.
const (
	// OpUpsert adds or changes a member at the destination.
	OpUpsert = "upsert"
	// OpDelete removes a member (mirror mode).
	OpDelete = "delete"
	// OpAppend adds a row without identity (append mode).
	OpAppend = "append"
)

// SyncRecord is one member a sync run sends: the operation, the member's
// primary key as text, and the destination fields after the sync's
// mappings and the governance transforms (a hashed email, a dropped
// field). A delete carries the key and no fields.
type SyncRecord struct {
	Op     string         `json:"op"`
	Key    string         `json:"key"`
	Fields map[string]any `json:"fields,omitempty"`
}

// SyncBatch is what one delivery sends: records of one run, numbered from
// 1 in the order the run sends them. RunID and Number together identify
// the batch (the webhook's Idempotency-Key), so a batch sent again after a
// crash can be dropped by the receiver.
type SyncBatch struct {
	WorkspaceID string       `json:"workspace_id"`
	SyncID      string       `json:"sync_id"`
	RunID       string       `json:"run_id"`
	Number      int          `json:"batch"`
	Records     []SyncRecord `json:"records"`
}

// BatchResult is the destination's answer to a delivered batch: the
// records it refused, by index in the batch, with a reason that carries
// no value of the record. Every record not in Failed was accepted.
type BatchResult struct {
	Failed map[int]string `json:"failed,omitempty"`
}

// ErrDeliveryFailed means a batch was not delivered at all (after the
// Sender's own retries): nothing of it counts as accepted.
var ErrDeliveryFailed = errors.New("delivery failed")

// Sender delivers batches to one destination. Send retries what may pass
// later (timeouts, 429 with Retry-After, 5xx) with backoff within ctx and
// returns an error wrapping ErrDeliveryFailed when the batch as a whole
// did not get through; its errors never carry a credential or a record's
// value. A Sender is safe for use by one run at a time.
type Sender interface {
	Send(ctx context.Context, b SyncBatch) (BatchResult, error)
	Close() error
}

// Sync run states (DESIGN.md section 3).
const (
	RunQueued    = "queued"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
)

// SyncRun is one execution of a sync.
type SyncRun struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	SyncID      string `json:"sync_id"`
	State       string `json:"state"`
	// Trigger is "schedule", "manual" or "approval"; Source the call's
	// source (SYSTEM for a schedule).
	Trigger string `json:"trigger"`
	Source  string `json:"source"`
	// Added, Changed, Removed and Failed count records; Skipped counts
	// members governance kept from the destination.
	Added   int64 `json:"added"`
	Changed int64 `json:"changed"`
	Removed int64 `json:"removed"`
	Failed  int64 `json:"failed"`
	Skipped int64 `json:"skipped"`
	// LastBatch is the number of the last batch the destination
	// acknowledged: a run resumed after a crash starts after it.
	LastBatch  int        `json:"last_batch"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}
