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
// sees only as "internal error" with a request id.
//
// Every warehouse query a tool runs for a caller takes its limits from
// queryLimits (timeout, row cap, access filters, and the key and human it
// counts against) and passes a QueryQueue (concurrency.go), which All puts
// in front of the warehouse: at most Concurrency.PerKey queries at once per
// key, PerHuman per human and Total in all, with a freed slot going to the
// waiting human with the fewest running. Preview answers are bounded
// (boundPreview: 1 MiB of rows, 4 KiB per value) and say when they were cut.
//
// tools may import store, guardrails and mcp-go's mcp package; it never
// imports server or a database driver.
package tools
