// Package approvals owns the human-in-the-loop workflow of DESIGN.md
// section 7: the queue that drives its state machine (pending -> approved
// -> executing -> succeeded | failed; pending -> rejected | expired |
// cancelled; the moves are declared once, in store.ApprovalChange.Check,
// which every store calls), who may decide, crash recovery, notifications,
// and the web queue and JSON API where people decide.
//
// An approval pins the tool, the canonical JSON arguments (Canonical, in
// the audit trail's form, store.CanonicalJSON) and their SHA-256, the
// requester, the policy version, rules, reason and facts at request time,
// and the objects the call touches with their versions
// (store.ApprovalPin; the server resolves them and names them by id in the
// arguments, and fails the approval at execution when one changed). The
// detail page lists the pins beside the arguments, and the facts under
// the labels of their declarations (guardrails.AllFacts), in their order. The pinned arguments are
// what reviewers see and what runs, so they are never redacted: Request
// refuses (ErrArgsRefused) arguments that contain an API key or exceed
// MaxArgs, rather than show a key to reviewers or run something other than
// what they saw. Facts are redacted, and the stored outcome has keys cut to
// their prefix. Every state change is a compare-and-set on the
// stored state, so an approval executes at most once: Begin lets exactly one
// caller move it from approved to executing, and Recover resolves an
// approval a crash left executing as failed instead of running it again.
//
// # Notifications
//
// A Queue tells its Notifier of every approval it creates and every state
// it moves one to. Webhook is the Notifier the server uses for
// serve --approval-webhook: Slack-compatible JSON, delivered in the
// background with retries and capped, jittered backoff (internal/retry,
// the audit shipper's too), never blocking the queue or the call; a
// failure is logged, never shown to the agent. Flush at shutdown waits
// until its context ends and then gives up on what is still in flight. A
// message carries only ids, the tool, the state, the policy's reason and
// the link.
//
// # Web queue and API
//
// Web serves the web queue under /approvals (source UI) and the JSON API
// under /api/v1/approvals (source API). It does not import the server: the
// server injects how keys are checked (AuthenticateFunc), how a key's
// principal is read afresh (PrincipalFunc), how an approved call runs
// (ExecuteFunc, the gate) and how the object a call acts on is found for
// the diff (TargetFunc). Pages are html/template from embed.FS with one
// style sheet and no JavaScript. Every response carries a strict
// Content-Security-Policy, X-Frame-Options DENY, nosniff, no referrer and
// no caching.
//
// Sessions: a person signs in with a user API key (agent keys are refused).
// The session id is 32 random bytes in a cookie that is HttpOnly,
// SameSite=Strict, Path=/approvals, Secure under TLS and expires after 8
// hours. Sessions live in server memory, keyed by the SHA-256 of the id, so
// a restart signs everyone out (a deliberate trade: nothing to migrate,
// nothing a database dump could replay). A session is bound to the key that
// signed in, and every request reads that key's principal again: revoking
// or expiring the key, or changing the member's role, applies at the
// session's next request, and a revoked key's session is ended.
//
// CSRF: every POST carries a per-session random token in a hidden field,
// compared in constant time; the sign-in form, which has no session yet,
// uses the same token in a short-lived cookie scoped to the sign-in path
// (double submit). Before that, a POST a browser says came from another
// origin is refused by net/http's CrossOriginProtection (Sec-Fetch-Site,
// else Origin against the Host; WebConfig.Origins trusted), and one from a
// browser that sends neither header by a Referer naming another origin.
// Browsers send "Origin: null" with forms under Referrer-Policy
// no-referrer, which is treated as no information; SameSite=Strict and the
// token still apply. Refused POSTs change nothing: no session (401), a
// foreign origin or a wrong token (403).
//
// Routes are http.ServeMux patterns (Web.route: "GET /approvals/{id}",
// "POST /api/v1/approvals/{id}/approve", ...); a path with one trailing
// slash is the path without it. A path no route serves is 404, and one
// served only with other methods is 405 with Allow, both in the format of
// the surface asked (an error page, or the API's JSON error).
//
// Who decides (Queue.CanDecide): a person with approvals.decide, through
// the web queue, the API or the CLI, who is neither the requester nor the
// human behind the requesting agent key (pinned on the approval). A request
// pinned without that human (an agent from before owners were required)
// can be decided by nobody: fail closed.
//
// Errors map to HTTP status in one table (errorKinds): unauthenticated
// 401, ErrForbidden 403, store.ErrNotFound 404, store.ErrConflict 409 (also
// an expired or already decided approval), too large 413, wrong method 405,
// store.ErrInvalid 400; anything else is 500 with a request id and no
// detail.
//
// The queue and the web read and change the store through Store: the
// approvals, the audit trail and the members, nothing else.
//
// approvals imports store and guardrails; never tools or server.
package approvals
