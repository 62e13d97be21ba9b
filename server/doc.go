// Package server is the MCP server of SignalSmith: the mcp-go server with
// every tool of package tools registered behind the gate, the stdio and
// streamable HTTP transports, the HTTP mux (/mcp, /healthz, /readyz,
// /metrics, the approval queue, the JSON APIs for PII classification
// (piiapi.go) and destinations (destinationsapi.go: people set
// destinations and their sealed secrets; agent keys only read), API key
// authentication, and the shipper of the audit trail to the warehouse.
//
// The gate (gate.go) is the one place every tool call passes. Its
// decision path, evaluate, is one function that every entry point uses:
// Middleware for a call (after authenticating the key), Execute for an
// approved call (for the requester as they are now) and Check for
// check_action (a dry run). In a fixed order it looks up the tool, checks
// the caller's identity (an agent acts for a human; an approver is neither
// the requester nor the human behind it), authorizes the tool's permission
// with RBAC, binds the warehouse to the caller (tools.Warehouses: access
// filters, limits, concurrency caps, masked previews), checks an approved
// call's pins, computes the tool's facts, reads the kill switch, decides
// with the policies, and for require_approval resolves what the call names
// (Resolve) so a call that cannot run is refused instead of queued. It
// returns a typed outcome (allow, forbidden, deny, queue, cannot run, bad
// argument) with the rules, facts and reason; the entry point only records
// and renders it. An allowed call, direct or approved, then runs through
// run: a tool that writes carries its pending audit event into the store,
// an approved call its pins, and a call that changed nothing and failed
// gives its rate-limit uses back. tools/list is filtered to the tools the
// caller's role permits by an after-list hook; a call to an unknown tool is
// audited by an error hook. HTTP requests to /mcp are authenticated before
// MCP sees them: a missing or bad key gets 401, and the refusal is audited.
//
// The HTTP layer in front of mcp-go (http.go, httpaudit.go) audits every
// request to /mcp that is refused, because what mcp-go refuses never
// reaches the gate. Malformed JSON-RPC from an authenticated caller (a
// batch, a wrong or missing jsonrpc version, a method, id, params or tool
// name of the wrong type, params that do not decode into the method's
// request) is answered here with a JSON-RPC error and one event; a method
// the server does not serve, an HTTP method other than GET, POST and
// DELETE, or a body that is not application/json is audited and left to
// mcp-go to answer.
// Without a valid key, a client address gets maxKeyFailures key checks a
// window (a minute), then 429 without a check (no bcrypt), except for a
// key the Authenticator verified within its cache time; its first
// maxAnonEvents refusals are audited one by one, the rest counted and
// audited as one event when the window ends or FlushRequestAudit runs (serve
// calls it when it stops). Memory is bounded by maxAddresses windows.
//
// Per-call store work (auth.go, policies.go): a call is one store call
// scope (store.WithCallScope, opened by protectMCP for /mcp and by the
// gate for stdio and in-process calls), so authentication, catalog reads
// and settings share one read of the store's version row and are
// otherwise served from the store's memory. With Config.StoredPolicies the
// guard makes the engine follow the workspace's stored policy set before
// every decision, so a set applied or reset from the command line decides
// the next call.
//
// Config.Store is the whole store.Store, for wiring only: each part takes
// the narrowest interface it needs of it. The Authenticator reads keys
// (Principals), the gate an approved call's requester, pinned objects and
// audit appends (GateStore), the guard the kill switch, the stored-policy
// follower the active set, and the Server itself what readiness, the PII
// API and resuming approved calls need (serverStore); RBAC takes a guardrails.Source, the
// engine a guardrails.RateLimiter, the queue an approvals.Store and the
// tools a tools.Store.
//
// Approvals (gate.go, execute.go): before a call the guardrails send to a
// human is queued, the tool's Resolve hook finds what it names; a call that
// cannot run is refused with the reason and never queued. The approval pins
// the resolved arguments (objects by id), the objects with their versions
// and the facts decided again on those arguments. Execute runs an approved
// call only when every pin still holds, Resolve passes again on the pinned
// arguments, the policies (which see the pinned model ids back as the
// names the agent gave) need no approval the human did not give, and no
// policy condition decides differently on the facts now than on the facts
// reviewed (guardrails.Engine.Crossed); else the approval fails with the
// reason. In every call the policies see a model the agent named by id
// under its name (namedView), so a condition on a model's name holds
// whichever form the agent wrote. The approval page diffs the pinned arguments against the object
// the tool's own Target hook loads (approvals.go); a tool without one acts
// on no existing object.
//
// Identity (identity.go): every agent acts for a human, and RBAC gives it
// only what both its role and its human's role permit. An agent member
// without a human (from a database older than required owners) is denied
// every call and sees no tools, with a message saying to recreate its key
// with --owner. The approval executor refuses to run a call whose approver
// is the requester or the human behind the requesting agent.
//
// Sessions (session.go): mcp-go's session manager accepts made-up and ended
// session ids, so sessions wraps it: an id is issued bound to the key that
// opened it and valid only with that key until it ends the session.
// bindSession answers 404, as for an unknown session, to any request (POST,
// GET, DELETE) presenting another key's, an unknown or an ended id, and
// audits it (action mcp.session).
//
// Every HTTP surface refuses DNS rebinding: /mcp in protectMCP, the others
// (the approval queue, its API, health and metrics) behind originGuard
// (origin.go), which also refuses cross-origin state-changing requests with
// net/http's CrossOriginProtection.
//
// Audit: a read, a denial or a failure is recorded (durably, in a group
// commit shared with concurrent calls) before the answer; a tool that
// writes carries its event into the store with the call
// (store.WithPendingAudit), which records it in the same transaction as the
// change. The event of a call whose tool computed facts records them, as
// the tool declared them (guardrails.CheckFacts, or the call is denied),
// under args.$facts (store.AuditFactsArg), so its decision can be
// replayed. The Shipper (shipper.go) moves the store's outbox to the
// warehouse's cdp_audit schema through a store.AuditSink, retrying with
// capped, jittered backoff (internal/retry) while the warehouse is down.
// /metrics (metrics.go) serves the audit backlog, decisions by effect, call
// latency per tool, and the warehouse queries running and waiting in the
// tools' QueryQueue (whose caps Config.QueryConcurrency sets); it holds no
// secret or personal data and is not authenticated.
//
// Errors: a failure the model should read is a tool result with IsError and
// a message saying what to do next; anything else is logged with a request
// id and reaches the caller only as "internal error" with that id. Secrets
// never reach a log line, an error, an audit record or a result: keys are
// known by their prefix only, audit arguments are redacted
// (guardrails.Redact), and every event is redacted and bounded again by
// the store (store.BoundAudit), as the gate's events are when they start.
//
// server imports tools, approvals, guardrails, destinations, store and
// internal/retry
// (besides mcp-go and Prometheus); never a database driver.
package server
