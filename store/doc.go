// Package store defines the domain types of the agent server, the metadata
// Store interface and the Warehouse interface. It holds no implementation and
// imports no database driver: store/sqlite implements both; store/trino has
// only the Trino dialect so far; store/demo holds the demo data and
// metadata.
//
// The metadata store is split by what it holds (store.go): Workspaces,
// Keys, RBAC (roles and members), Catalog (models, audiences, destinations,
// syncs), PIIClassification, RateLimits, KillSwitch, Approvals,
// AccessFilters, PolicySets, AuditLog (whose writing side, AuditAppender,
// is in audit.go) and SyncRuns (syncrun.go: sync runs and the lease that
// keeps runs of one sync apart). The sync engine's state in the warehouse
// schema cdp_planner is written through a Planner (planner.go), and what a
// run sends and a destination answers is in delivery.go. Each method is declared and documented once, in its
// interface. Store is all of them with Close: the wiring holds a Store,
// and store/sqlite.DB implements it; every consumer takes the narrowest
// interface it needs, one of these or a few of their methods declared
// where it is used (audience.Lister, guardrails.Source, approvals.Store,
// tools.Store, server.Principals, say), so what a package may do to the
// store reads from its types.
//
// Every Store and Warehouse method reports failures with the sentinel errors
// declared here (ErrNotFound, ErrConflict, ErrInvalid, ErrQueryLimit,
// ErrQueryRefused), wrapped with context; callers test them with errors.Is.
// A warehouse reports a failed query as a QueryError (query_error.go): a
// kind of a fixed vocabulary (syntax, unknown table, column or function,
// arguments, type mismatch, not allowed, timeout, a failure while it ran)
// and a message built from it, never the engine's own message, which can
// quote a value from the data. errors.Is matches it against the sentinels.
//
// The approval state machine is declared here once (approval.go):
// ApprovalChange.Check says which moves are allowed, and every store calls
// it before its compare-and-set on the stored state.
//
// The audit trail's contract lives here too (audit.go, audit_verify.go): the
// redaction and limits every recorded event passes (BoundAudit, built on
// RedactSecrets and BoundText: a store applies it to each event before it
// hashes it, so no writer can skip it), the
// hash chain's canonical encoding (AuditHash, CanonicalJSON), where a
// decision's guardrail facts go in its event (AuditFactsArg, inside args,
// so hashed and bounded with them: WithAuditFacts), a call's
// pending audit event that a store records in the transaction of the change
// (WithPendingAudit, NoteAuditResource), the outbox a store keeps
// (AuditOutbox), the warehouse target events are shipped to (AuditSink),
// and chain verification (ChainVerifier, VerifyChain, VerifyCopy), which
// works on any store or copy through a ReadAuditFunc.
package store
