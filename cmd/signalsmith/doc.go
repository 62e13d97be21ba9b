// Command signalsmith is the SignalSmith agent server: an MCP server that
// lets AI agents work with a warehouse-native customer data platform behind
// authentication, RBAC, guardrails, human approvals and a tamper-evident
// audit trail. Run "signalsmith help" for the commands; README.md has the
// details.
//
// This package only parses flags, reads configuration and wires the other
// packages together (Main.Run); the behaviour lives in server, tools,
// guardrails, approvals, audience, store and evals.
package main
