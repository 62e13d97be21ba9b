// Package approvals owns the human-in-the-loop workflow of DESIGN.md
// section 7: the queue and its state machine (pending -> approved ->
// executing -> succeeded | failed; pending -> rejected | expired |
// cancelled), who may decide, and crash recovery.
//
// An approval pins the tool, the canonical JSON arguments (Canonical) and
// their SHA-256, the requester, and the policy version, rules, reason and
// facts at request time. Every state change is a compare-and-set on the
// stored state, so an approval executes at most once: Begin lets exactly one
// caller move it from approved to executing, and Recover resolves an
// approval a crash left executing as failed instead of running it again.
//
// approvals imports store and guardrails; never tools or server.
package approvals
