// Package server is the MCP server of SignalSmith: the mcp-go server with
// every tool of package tools registered behind the gate, the stdio and
// streamable HTTP transports, the HTTP mux (/mcp, /healthz, /readyz) and
// API key authentication.
//
// The gate (gate.go) is the one place every tool call passes, in a fixed
// order: authenticate the key, authorize the tool's permission with RBAC,
// run the handler, write the audit event, answer. tools/list is filtered to
// the tools the caller's role permits by an after-list hook; a call to an
// unknown tool is audited by an error hook. HTTP requests to /mcp are
// authenticated before MCP sees them: a missing or bad key gets 401, and
// the refusal is audited.
//
// Errors: a failure the model should read is a tool result with IsError and
// a message saying what to do next; anything else is logged with a request
// id and reaches the caller only as "internal error" with that id. Secrets
// never reach a log line, an error, an audit record or a result: keys are
// known by their prefix only, and audit arguments are redacted (Redact).
//
// server imports tools, guardrails and store; never a database driver.
package server
