// Package guardrails decides what a caller may do and what may leave the
// warehouse. The gate in package server calls it; tools never do.
//
// It owns:
//
//   - the permission table of DESIGN.md section 5, as data in one place
//     (permissions.go): AllPermissions, IsPermission and BuiltInRoles, which
//     the store writes into every workspace;
//   - RBAC (rbac.go): Casbin's RBAC-with-domains model, one domain per
//     workspace, policies per role and a grouping per member, exact
//     matching. An RBAC loads the workspaces named when it is built, from
//     a Source (the read side of store.RBAC), and reloads whenever a principal
//     carries a newer store RBACVersion than the loaded policy, before
//     deciding, so a role or membership change applies to the next call.
//     An agent holds only what both its own role and the role of the human
//     it acts for (its owner, read from the loaded memberships) permit, so
//     a change of the human's role applies to the agent's next call too; an
//     agent without a human, or whose human has no role, holds nothing;
//   - the guardrail facts (facts.go): every fact a tool may compute,
//     declared once with its type, label and meaning (AllFacts,
//     LookupFact). Conditions read each as a CEL variable facts.NAME of
//     its type (and a dependent as a typed object), so a policy naming an
//     unknown fact or field, or comparing a fact with a value of another
//     type, fails at load with its file and line; CheckFacts holds a
//     tool's computed facts to the names it declares, and Fact.Value reads
//     a value back as its type (also from JSON, as approvals store them).
//     An undeclared fact, or one of another type, fails the conditions
//     that apply, which denies;
//   - AI policies (policy.go, decide.go): YAML policy files with CEL
//     conditions over the call and the facts a tool computed, the shipped
//     defaults, the kill switch and rate limits (counted through a
//     RateLimiter, which the store implements, per key, per human across
//     their keys, or per workspace; Decide counts a call, Refund gives the
//     count back for a call that did not go on); Crossed (review.go) names
//     the policies whose condition decides differently on an approval's
//     reviewed facts than on the facts now, so an approved call whose facts
//     moved across a threshold fails;
//   - PII masking of previews (pii.go) and redaction of audit arguments
//     (redact.go): secret-named values, and API keys in argument names and
//     values at any depth. The secret patterns themselves are
//     store.RedactSecrets, which the store applies to every event it
//     records (store.BoundAudit);
//   - the checks of a person's PII classification of warehouse columns
//     (classify.go), shared by "signalsmith pii" and /api/v1/pii, so both
//     accept and refuse the same input. The levels of model columns are
//     derived from it by the store (store.ApplyPII).
//
// Destination filters (DESIGN.md section 6) belong here too, when they
// arrive.
//
// Every decision fails closed: an unknown permission, an unknown or empty
// PII level, a policy or RBAC load that fails, a condition that cannot be
// evaluated, or a race between a role change and a call denies (or hides).
//
// guardrails imports store, Casbin, cel-go and a YAML parser, and the
// standard library. It never imports tools, server, approvals or a database
// driver (a test holds this).
package guardrails
