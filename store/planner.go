package store

import (
	"context"
	"time"
)

// The sync engine's state in the warehouse (DESIGN.md principle 2.1):
// what each sync last delivered and what each run plans to send live in
// the warehouse schema cdp_planner, not in the server. A Planner is the
// writer of that schema; the engine (package activation) drives it, and
// every diff is SQL run there, so an audience is never held in server
// memory.

// Planner phases of a run.
const (
	// PhaseExtracting: members are being staged; a resumed run starts
	// the extraction over (nothing has been sent yet).
	PhaseExtracting = "extracting"
	// PhaseSending: the run's records are planned and numbered; a resumed
	// run sends the batches after LastBatch.
	PhaseSending = "sending"
	// PhaseDone: the run finished (its State says how).
	PhaseDone = "done"
)

// Kinds of a planned record: what the diff found.
const (
	KindAdd    = "add"
	KindChange = "change"
	KindRemove = "remove"
	KindAppend = "append"
)

// PlanRun names a run in the planner and fixes what its plan depends on:
// the sync's mode and the batch size, so a resumed run numbers its
// batches as the run it resumes did.
type PlanRun struct {
	RunID       string
	WorkspaceID string
	SyncID      string
	Mode        string
	BatchSize   int
	Trigger     string
	Source      string
	StartedAt   time.Time
}

// PlanState is a run as the planner holds it: its phase, how many
// records its plan has, the last batch acknowledged and the counts so
// far.
type PlanState struct {
	PlanRun
	Phase     string
	State     string
	Total     int64
	LastBatch int
	Added     int64
	Changed   int64
	Removed   int64
	Failed    int64
	Skipped   int64
}

// DiffCounts is what a dry run found: the members staged, what a run
// would add, change and (mirror mode) remove against the snapshot, and
// how many members the snapshot holds (what the destination has from
// earlier runs). In append mode every staged member is an add.
type DiffCounts struct {
	Staged  int64 `json:"staged"`
	Added   int64 `json:"added"`
	Changed int64 `json:"changed"`
	Removed int64 `json:"removed"`
	Held    int64 `json:"held"`
}

// StagedMember is one extracted member: its primary key as text, the
// fingerprint of its destination fields, and the fields as a JSON object.
type StagedMember struct {
	Key         string
	Fingerprint string
	Fields      []byte
}

// PlannedRecord is one record of a run's plan: its place in the run (Seq,
// from 1; batch n holds Seq (n-1)*BatchSize+1 to n*BatchSize), its kind,
// the member's key and, unless it is a removal, its fields as a JSON
// object.
type PlannedRecord struct {
	Seq    int64
	Kind   string
	Key    string
	Fields []byte
}

// PlanAck is a destination's answer to batch Batch, which held the
// records with Seq From to To: Failed are the refused ones by Seq, with
// the destination's reason (which carries no value of the record).
type PlanAck struct {
	RunID  string
	SyncID string
	Batch  int
	From   int64
	To     int64
	Failed map[int64]string
}

// Planner writes the sync engine's tables in cdp_planner: sync_runs (one
// row per run, with its phase, counts and outcome), sync_snapshot (per
// sync, the key and fingerprint of every member the destination holds, as
// far as acknowledged batches tell), sync_stage and sync_plan (a run's
// extraction and its numbered records, kept until the run finishes) and
// sync_failures (per sync, the members the destination refused, retried
// by the next run). Methods return ErrNotFound for an unknown run.
type Planner interface {
	// OpenPlan records a new run in phase extracting, or returns the run
	// as the planner holds it when it is there already (a resumed run).
	OpenPlan(ctx context.Context, r PlanRun) (PlanState, error)
	// ResetStage removes what an earlier attempt of the run staged.
	ResetStage(ctx context.Context, runID string) error
	// Stage adds extracted members to the run's staging table in one
	// transaction; a key staged twice keeps its last fields.
	Stage(ctx context.Context, runID string, members []StagedMember) error
	// Diff computes the run's records in SQL and numbers them: in
	// upsert and mirror mode the staged members the snapshot lacks
	// (adds) or holds with another fingerprint (changes), in mirror mode
	// also the snapshot's members no longer staged (removes); in append
	// mode every staged member. Failures of members the plan no longer
	// sends are forgotten. skipped is the count of members governance
	// kept out. The run moves to phase sending.
	Diff(ctx context.Context, runID string, skipped int64) (PlanState, error)
	// Preview counts what a run would send of the members staged under
	// runID (a throw-away id of a dry run, with no run recorded), with the
	// same SQL comparison as Diff, without planning or changing anything.
	Preview(ctx context.Context, runID, syncID, mode string) (DiffCounts, error)
	// Records returns the planned records with Seq in (after, after+n],
	// in Seq order.
	Records(ctx context.Context, runID string, after int64, n int) ([]PlannedRecord, error)
	// Ack applies a batch's answer in one transaction: the snapshot
	// advances for the accepted records only, the refused ones are
	// recorded in sync_failures, the run's counts grow and LastBatch
	// becomes a.Batch. An Ack of a batch already acknowledged changes
	// nothing.
	Ack(ctx context.Context, a PlanAck) (PlanState, error)
	// Finish records the run's outcome (state, error, finish time and
	// duration), moves it to phase done and removes its staged and
	// planned rows.
	Finish(ctx context.Context, runID, state, errText string, at time.Time) error
	// Close releases the writer.
	Close() error
}
