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
// Audit: a read, a denial or a failure is recorded (durably, in a group
// commit shared with concurrent calls) before the answer; a tool that
// writes carries its event into the store with the call
// (store.WithPendingAudit), which records it in the same transaction as the
// change. The Shipper (shipper.go) moves the store's outbox to the
// warehouse's cdp_audit schema through a store.AuditSink, retrying with
// backoff while the warehouse is down. /metrics (metrics.go) serves the
// audit backlog, decisions by effect, call latency per tool, and the
// warehouse queries running and waiting in the tools' QueryQueue (whose
// caps Config.QueryConcurrency sets); it holds no
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
