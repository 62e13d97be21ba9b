// Package activation is the sync engine (DESIGN.md sections 3 and 9): it
// runs a sync, sending its audience's members to its destination through
// a store.Sender, and records the run.
//
// It imports store, audience, github.com/robfig/cron/v3 (schedules) and
// the standard library: never mcp-go, server, tools or a database driver. The metadata store (Store, a few
// methods of store.Store), the warehouse (store.Warehouse), the planner
// (store.Planner, the writer of the warehouse schema cdp_planner) and the
// Senders (package destinations) are given to New.
//
// # A run
//
// Run(ctx, Request) takes the sync's lease in the store (runs of one sync
// never overlap, across processes; ErrBusy otherwise) and then:
//
//  1. Checks the sync: it must be active and have an owner (the member
//     who created it, store.Sync.OwnerID) who is still a member. Its
//     saved audience is compiled as the tools compile it
//     (audience.ParseSaved, audience.Compile over a snapshot of the
//     catalog). Governance (an interface; PIIGovernance by default) turns
//     the mappings into a FieldPlan, which the engine checks again: a
//     blocked or unclassified column is never read for sending, whatever
//     the plan says. A sync that cannot run is refused (ErrRefused, with
//     what to change) before anything is recorded or sent.
//  2. Extracts the members with the owner's access filters
//     (AccessFiltersFor of the owner), a page of PageSize at a time in
//     primary key order (keyset paging: key > last), selecting the key,
//     the mapped columns and the columns of the plan's skip rule. Each
//     member's fields get their transforms (sha256 of the trimmed,
//     lowercased value for redacted columns), are encoded as a JSON
//     object and fingerprinted (SHA-256 of that object, 128 bits), and
//     each page is staged in cdp_planner.sync_stage. Only one page is
//     ever in server memory. Members without a key value are not sent.
//  3. Diffs in cdp_planner with SQL (store.Planner.Diff): against
//     cdp_planner.sync_snapshot, the key and fingerprint of every member
//     the destination holds as far as acknowledged batches tell, it
//     numbers adds, then changes, then (mirror mode) removes, each in key
//     order, into cdp_planner.sync_plan. Append mode numbers every member
//     and uses no snapshot. Upsert mode keeps members who left the
//     audience in the snapshot: the destination still has them.
//  4. Sends batch n, the planned records (n-1)*size+1 to n*size, for n
//     from 1 (size: the destination's batch_size, default 500), and
//     applies each answer in one planner transaction: the snapshot
//     advances only for accepted records, refused ones go to
//     cdp_planner.sync_failures with the destination's reason, and the
//     run's counts and last acknowledged batch grow. The snapshot not
//     advancing is what makes the next run retry a refused record.
//  5. Finishes: the outcome, counts and duration in cdp_planner.sync_runs
//     and in the store's run; staged and planned rows are removed.
//
// # Crashes, cancellation and failures
//
// Everything a run needs to go on is in cdp_planner: its phase, its plan
// and its last acknowledged batch. A run whose context ends (shutdown)
// returns ErrInterrupted and stays running; so does a run whose process
// died, once its lease runs out (LeaseTTL). The next Run of the sync
// resumes it: an interrupted extraction starts over (nothing was sent), an
// interrupted send goes on with the batch after the last acknowledged
// one, under the same run id and batch numbers, so a receiver that dedups
// by Idempotency-Key (run id + batch number) applies each batch once. An
// answer that arrives as the context ends is still recorded. A batch the
// destination did not take at all (store.ErrDeliveryFailed, after the
// Sender's own retries) fails the run (ErrFailed): its stored error names
// the batch and nothing of the destination's answer, whose detail goes to
// the log; the next run starts over from the snapshot, which holds exactly
// what was acknowledged. A run whose destination refused some records
// succeeds, with them counted as failed.
//
// # Governance at sync time
//
// FilterGovernance is the Governance the server wires in: PII levels,
// the marketing consent rule (FieldPlan.RequireTrue) and the destination
// filters people set (store.DestinationFilters): block, drop, sha256,
// allow, allow_unconsented and rate_limit, in priority order, every
// matching filter applying and a block winning. A rate limit is
// FieldPlan.MaxRecords: the run sends the first records of its plan, and
// the rest, whose snapshot did not advance, go with the next run. Refused
// runs and dropped fields are audit events.
//
// Run blocks until the run ends and returns its outcome; the tools and
// the scheduler call it from goroutines of their own, so a slow or failing
// receiver never blocks a caller.
//
// Run blocks until the run ends and returns its outcome. The Scheduler
// (scheduler.go) runs syncs in the background instead: Trigger takes the
// lease, checks the sync and records its run, returns that run at once and
// goes on in a goroutine of its own, so a slow or failing receiver never
// blocks a caller; Start runs due syncs at every tick (the next time of a
// schedule, ParseSchedule, is computed from the last run in the store, so
// schedules survive restarts, and an unfinished run is resumed). Every
// run's outcome is an audit event (action syncs.trigger, resource sync).
//
// # Dry runs
//
// DryRun checks the sync and extracts its members as a run would, staged
// under a throw-away id with no lease and no run recorded, and counts the
// diff with store.Planner.Preview; the stage is removed afterwards.
package activation
