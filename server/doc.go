// Package server is the MCP server of SignalSmith: the mcp-go server with
// every tool of package tools registered behind the gate, the stdio and
// streamable HTTP transports, the HTTP mux (/mcp, /healthz, /readyz,
// /metrics, the approval queue), API key authentication, and the shipper of
// the audit trail to the warehouse.
//
// The gate (gate.go) is the one place every tool call passes, in a fixed
// order: authenticate the key, authorize the tool's permission with RBAC,
// run the handler, write the audit event, answer. tools/list is filtered to
// the tools the caller's role permits by an after-list hook; a call to an
// unknown tool is audited by an error hook. HTTP requests to /mcp are
// authenticated before MCP sees them: a missing or bad key gets 401, and
// the refusal is audited.
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
// change. The Shipper (shipper.go) moves the store's outbox to the
// warehouse's cdp_audit schema through a store.AuditSink, retrying with
// backoff while the warehouse is down. /metrics (metrics.go) serves the
// audit backlog, decisions by effect and call latency per tool; it holds no
// secret or personal data and is not authenticated.
//
// Errors: a failure the model should read is a tool result with IsError and
// a message saying what to do next; anything else is logged with a request
// id and reaches the caller only as "internal error" with that id. Secrets
// never reach a log line, an error, an audit record or a result: keys are
// known by their prefix only, and audit arguments are redacted (Redact).
//
// server imports tools, guardrails and store; never a database driver.
package server
