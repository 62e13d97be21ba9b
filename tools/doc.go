// Package tools defines the MCP tools of the agent server, one file per
// area (warehouse, models, audiences, destinations, syncs, approvals,
// governance, audit). Each Tool is a
// spec (name, description for a model, JSON Schema input, all four
// annotations), the permission it needs, the resource type it touches,
// whether it writes, and a handler.
//
// Handlers never authenticate, authorize or audit: the gate in package
// server does that for every tool, in one place. A handler reads the caller
// from its *Call, decodes its arguments strictly (unknown fields and wrong
// types are errors the model can act on), and returns either an Output
// (structured JSON plus a short text) or an error: a *Error for a failure
// the model should read, any other error for an internal failure the caller
// sees only as "internal error" with a request id. Warehouse errors become
// *Error through queryError, which shows a store.QueryError's safe message
// and, for a query that failed while it ran, one fixed explanation: the
// engine's message never reaches the model or the audit reason.
//
// Writes to models and audiences compute their blast radius as guardrail
// facts before the decision (blast.go): every saved audience is compiled
// over the catalog before and after the write, and those whose query
// changes (audiences over a changed model, over models related to it, and
// audiences that include or exclude a changed audience, transitively) are
// counted, up to maxBlastDependents, with their synced ones flagged. Sizes
// in facts are true sizes, counted without the caller's access filters
// (only aggregates: no row leaves the warehouse), beside the size the
// caller can see. A model update that would break an audience built on
// the model, or give a new source to a model synced audiences are over,
// is refused already in its facts, so it is never queued for a human.
//
// A tool that computes facts declares them (Tool.FactNames), by names
// package guardrails declares with their types and labels; the gate denies
// a call whose facts stray from the declaration. callerFacts (check_action,
// the audience tools' results) and search_audit leave out, for a caller
// with access filters, the facts declared as counted beyond them
// (guardrails.Fact.Unfiltered).
//
// A tool whose arguments name models or audiences has a Resolve hook
// (resolve.go): before the gate queues a call for a human, and again before
// an approved call runs, it loads what the arguments name, refuses what the
// handler would refuse for a missing or blocked object, rewrites every
// model and audience reference to its id (what the approval pins and
// runs), and lists the objects the call touches with their versions (an
// audience definition's models and included audiences are recorded as
// validation and compilation look them up).
//
// A tool whose arguments name one existing model, audience, destination or
// sync has a Target hook (Tool.Target, made by targetOf): it loads that
// object, as it is now, from an approval's pinned arguments, for the
// approval page's diff; the server only calls it. A destination is shown
// with its settings redacted, an audience with its definition as JSON. A
// tool that creates has none: nothing exists yet to diff against.
// TestEveryChangeOfAnExistingObjectHasATarget checks that every tool that
// updates or deletes what its Resolve finds has one.
//
// A tool reaches the warehouse only through call.Warehouse (handle.go), the
// handle the gate binds to the caller after RBAC: Deps has no warehouse,
// and TestNoToolReachesTheUnboundWarehouse checks that no other file of the
// package holds a store.Warehouse or masks a preview itself. Every query
// of the handle runs with the caller's access filters (an agent's include
// its human's), read once per call, the server's timeout and row cap, and
// passes a QueryQueue (concurrency.go): at most Concurrency.PerKey queries
// at once per key, PerHuman per human and Total in all, with a freed slot
// going to the waiting human with the fewest running. Preview is the one
// way to show rows: it selects only the columns a preview may show
// (guardrails.PreviewColumns), refuses SQL whose result has other columns,
// masks by PII level and bounds the answer (boundPreview: 1 MiB of rows,
// 4 KiB per value; the answer says when it was cut). UnfilteredCount is
// the one query without the caller's filters, for the size facts: it
// returns a count, never a row.
//
// Handlers reach the metadata store through Deps.Store, a Store: the
// catalog and what a tool reads besides (approvals, the audit trail, the
// caller's access filters, the PII classification); audit appends, approval
// moves, keys, roles, filters and settings are the gate's, the queue's and
// the command line's, and TestDepsLeaveTheGatesStoreWritesOut checks that
// no field of Deps reaches them.
//
// The sync tools (syncs.go) check what they would store as the engine
// will run it (checkDraft: the audience and destination of the caller's
// workspace, each mapped column's PII level, unique destination fields,
// the mode and schedule), so a bad call is refused before it is queued.
// trigger_sync and its dry run go through Deps.Syncs (a SyncRunner, the
// server's activation.Scheduler), whose engine holds its own warehouse:
// the tools still never hold one.
//
// tools may import store, audience (audience definitions and their SQL),
// guardrails, approvals (the queue behind the approval tools, and its
// errors), activation (schedules, dry runs, run errors) and mcp-go's mcp
// package; it never imports server or a database driver.
package tools
