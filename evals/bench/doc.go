// Package bench is the benchmark harness behind "signalsmith eval bench":
// a load generator that measures what the gate costs a caller.
//
// Load drives one read tool (get_model of one model) with N concurrent
// sessions of the real mcp-go client over loopback streamable HTTP, against
// two servers in the same run: the full SignalSmith server (the gate:
// authentication, RBAC, guardrails, durable audit) and a bare mcp-go server
// (NewBare) serving a get_model tool with no gate, which returns the same
// model read from the same store. Rounds of the two alternate (gate, bare,
// bare, gate, ...), so noise on a shared machine hits both, until each side
// has been measured for the configured duration; each point reports calls
// per second, p50 and p99 latency for both sides and their ratio. A call
// that fails or returns an error result fails the run: refusals are never
// counted as fast calls.
//
// Measure times a single operation over and over and reports its p50 and
// p99: Decider gives one decision as the gate makes it (a key
// authenticated with a warm cache, the RBAC check and every default policy
// that applies) and ListTools one tools/list of the full server, in process.
//
// The harness knows nothing of how a server is wired: the command
// (cmd/signalsmith, eval.go) starts the full server exactly as serve --demo
// does and hands its endpoint, key and parts to Run. bench imports
// mcp-go, server, guardrails and store; never a database driver.
package bench
