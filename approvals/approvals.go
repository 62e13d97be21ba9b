package approvals

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// DefaultTTL is how long a pending approval waits for a decision.
const DefaultTTL = 24 * time.Hour

// ErrForbidden means the caller may not make this decision; the message
// says why.
var ErrForbidden = errors.New("forbidden")

// ErrArgsRefused means a call cannot be queued for a human because of its
// arguments; the error text says why and what to do, and quotes none of
// them.
var ErrArgsRefused = errors.New("the call's arguments cannot be queued for approval")

// MaxArgs is the largest canonical argument text, in bytes, a queued call
// may have: reviewers read all of it, and it is stored whole.
const MaxArgs = 64 << 10

// Authorizer is the RBAC check the queue needs; *guardrails.RBAC has it.
type Authorizer interface {
	Authorize(ctx context.Context, p store.Principal, permission string) (guardrails.Access, error)
}

// Store is what the queue and its web pages need of the metadata store:
// the approvals, the audit trail to record decisions in, and the members
// (store.RBAC) the pages name and filter by.
type Store interface {
	store.Approvals
	store.AuditAppender
	Members(ctx context.Context, workspaceID string) ([]store.Member, error)
}

// Queue is the approval queue over the store. It is safe for concurrent
// use: every state change is a compare-and-set in the store.
type Queue struct {
	store  Store
	rbac   Authorizer
	ttl    time.Duration
	now    func() time.Time
	notify Notifier
}

// NewQueue returns a queue whose approvals expire after ttl (DefaultTTL
// when zero).
func NewQueue(s Store, rbac Authorizer, ttl time.Duration) *Queue {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Queue{store: s, rbac: rbac, ttl: ttl, now: time.Now}
}

// Notifier hears of every approval the queue creates and of every state
// it then moves one to. Notify must return at once and never fail the
// queue: a Webhook queues the delivery and retries in the background.
type Notifier interface {
	Notify(a store.Approval)
}

// SetNotifier makes n hear of the queue's approvals (nil for none). Call it
// before the queue is used.
func (q *Queue) SetNotifier(n Notifier) { q.notify = n }

// Flush waits until the notifier delivered (or gave up on) what it was
// told, or ctx ends. A short-lived process (the CLI) calls it before it
// exits; it returns at once when the notifier does not queue.
func (q *Queue) Flush(ctx context.Context) error {
	if w, ok := q.notify.(interface{ Wait(context.Context) error }); ok {
		return w.Wait(ctx)
	}
	return nil
}

// notified passes a state change that happened on to the notifier.
func (q *Queue) notified(a store.Approval, err error) (store.Approval, error) {
	if err == nil && q.notify != nil {
		q.notify.Notify(a)
	}
	return a, err
}

// Canonical returns the canonical form of tool arguments and its SHA-256
// in hex. The form is store.CanonicalJSON's, the one the audit trail
// hashes too: object keys sorted, no insignificant white space, and
// numbers kept exactly as written. Two argument texts that mean the same
// have the same hash; "no arguments" is {}. Arguments that are not one
// JSON object are an error.
func Canonical(args json.RawMessage) (json.RawMessage, string, error) {
	if len(bytes.TrimSpace(args)) == 0 || bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		args = json.RawMessage("{}")
	}
	out, err := store.CanonicalJSON(args)
	if err != nil {
		return nil, "", fmt.Errorf("canonical arguments: %w", err)
	}
	// The canonical text of a JSON object, and only of one, starts with {.
	if out[0] != '{' {
		return nil, "", errors.New("canonical arguments: not a JSON object")
	}
	sum := sha256.Sum256(out)
	return out, hex.EncodeToString(sum[:]), nil
}

// Request queues a call the guardrails sent to a human: it pins the tool,
// the canonical arguments and their hash, the requester, the decision's
// policy version, rules and reason with the facts at request time, and the
// objects the call touches with their versions (pins; the caller resolves
// them, and names them by id in args).
//
// Arguments that contain an API key (in a name or a value, at any depth)
// or are longer than MaxArgs are refused with ErrArgsRefused. The approval
// must pin exactly what will run, so its arguments cannot be redacted as
// the audit trail's are; and a key in them would be shown to every
// reviewer, on the page, the API and the requester's approval tools.
func (q *Queue) Request(ctx context.Context, p store.Principal, source, tool string, args json.RawMessage, d guardrails.Decision, facts map[string]any, pins ...store.ApprovalPin) (store.Approval, error) {
	canon, hash, err := Canonical(args)
	if err != nil {
		return store.Approval{}, err
	}
	// The canonical text writes every name and string unescaped, so a key
	// spelt with \u escapes is found too.
	if store.HasAPIKey(string(canon)) {
		return store.Approval{}, fmt.Errorf("%w: they contain a SignalSmith API key, which reviewers and the audit trail would see; remove the key from the arguments and call again", ErrArgsRefused)
	}
	if len(canon) > MaxArgs {
		return store.Approval{}, fmt.Errorf("%w: they are %d bytes, more than the %d a reviewer can be shown; make the call smaller and call again", ErrArgsRefused, len(canon), MaxArgs)
	}
	now := q.now().UTC()
	a, err := q.store.CreateApproval(ctx, store.Approval{
		WorkspaceID:      p.WorkspaceID,
		Tool:             tool,
		Args:             canon,
		ArgsHash:         hash,
		RequesterID:      p.MemberID,
		RequesterName:    p.MemberName,
		RequesterKind:    p.Kind,
		RequesterOwnerID: p.OwnerID,
		KeyPrefix:        p.KeyPrefix,
		Source:           source,
		PolicyVersion:    d.PolicyVersion,
		Rules:            d.Rules,
		Reason:           d.Reason,
		Facts:            guardrails.Redact(facts),
		Pins:             pins,
		CreatedAt:        now,
		ExpiresAt:        now.Add(q.ttl),
	})
	if err != nil {
		return store.Approval{}, fmt.Errorf("queue %s for approval: %w", tool, err)
	}
	return q.notified(a, nil)
}

// CanDecide returns nil when decider may approve or reject a, else an error
// wrapping ErrForbidden that says why. A decider must be a human (a user
// key) acting outside MCP, hold approvals.decide, and be neither the
// requester nor the human behind the requesting agent key. A request of an
// agent with no human behind it (from before owners were required) cannot
// be decided by anyone.
func (q *Queue) CanDecide(ctx context.Context, decider store.Principal, source string, a store.Approval) error {
	switch {
	case source == store.SourceAI:
		return fmt.Errorf("%w: approvals are decided by people in the approval queue, never through MCP", ErrForbidden)
	case decider.Kind != store.KindUser:
		return fmt.Errorf("%w: an agent key cannot decide approvals", ErrForbidden)
	case decider.WorkspaceID != a.WorkspaceID:
		return fmt.Errorf("%w: the approval belongs to another workspace", ErrForbidden)
	case decider.MemberID == a.RequesterID:
		return fmt.Errorf("%w: nobody may decide their own request", ErrForbidden)
	case a.RequesterKind != store.KindUser && a.RequesterOwnerID == "":
		// Without the human behind the agent nobody can tell that the
		// decider is not deciding for themselves: fail closed.
		return fmt.Errorf("%w: the requesting agent key acts for no human, so nobody may decide its requests; have the key recreated with --owner and the call asked again", ErrForbidden)
	case decider.MemberID == a.RequesterOwnerID:
		return fmt.Errorf("%w: the owner of the requesting agent key may not decide its requests", ErrForbidden)
	}
	acc, err := q.rbac.Authorize(ctx, decider, "approvals.decide")
	if err != nil {
		return fmt.Errorf("check approvals.decide: %w", err)
	}
	if !acc.Allowed {
		return fmt.Errorf("%w: %s", ErrForbidden, acc.Reason)
	}
	return nil
}

// Decide approves or rejects a pending approval as decider. An approval past
// its expiry is moved to expired and cannot be approved. Of two deciders at
// once, one wins; the other gets store.ErrConflict.
func (q *Queue) Decide(ctx context.Context, decider store.Principal, source, id string, approve bool, comment string) (store.Approval, error) {
	if len(comment) > MaxComment {
		return store.Approval{}, fmt.Errorf("comment is longer than %d bytes: %w", MaxComment, store.ErrInvalid)
	}
	a, err := q.store.GetApproval(ctx, decider.WorkspaceID, id)
	if err != nil {
		return store.Approval{}, err
	}
	if err := q.CanDecide(ctx, decider, source, a); err != nil {
		if errors.Is(err, ErrForbidden) {
			q.audit(ctx, decider, source, a, store.DecisionDenied, "", err.Error())
		}
		return store.Approval{}, err
	}
	if a.State != store.ApprovalPending {
		return store.Approval{}, fmt.Errorf("approval %s is %s, not pending: %w", id, a.State, store.ErrConflict)
	}
	now := q.now().UTC()
	if !now.Before(a.ExpiresAt) {
		if _, err := q.expire(ctx, a, now); err != nil && !errors.Is(err, store.ErrConflict) {
			return store.Approval{}, err
		}
		return store.Approval{}, fmt.Errorf("approval %s expired at %s: %w", id, a.ExpiresAt.Format(time.RFC3339), store.ErrConflict)
	}
	to := store.ApprovalRejected
	if approve {
		to = store.ApprovalApproved
	}
	change := store.ApprovalChange{From: store.ApprovalPending, To: to, At: now, DeciderID: decider.MemberID, DeciderName: decider.MemberName, Comment: strings.TrimSpace(comment)}
	if !approve {
		change.Outcome = "rejected by " + decider.MemberName
	}
	a, err = q.notified(q.store.TransitionApproval(ctx, a.WorkspaceID, id, change))
	if err != nil {
		return store.Approval{}, err
	}
	if err := q.audit(ctx, decider, source, a, store.DecisionAllowed, to, change.Comment); err != nil {
		return a, fmt.Errorf("approval %s is %s, but its audit record failed: %w", id, to, err)
	}
	return a, nil
}

// audit records a decision (or a refused attempt at one) by a person.
func (q *Queue) audit(ctx context.Context, decider store.Principal, source string, a store.Approval, decision, result, reason string) error {
	return q.store.AppendAudit(context.WithoutCancel(ctx), store.AuditEvent{
		WorkspaceID: a.WorkspaceID, ActorType: decider.Kind, ActorID: decider.MemberID, ActorName: decider.MemberName,
		KeyPrefix: decider.KeyPrefix, Source: source, Action: "approvals.decide", Tool: a.Tool,
		ResourceType: "approval", ResourceID: a.ID, ApprovalID: a.ID, Decision: decision, Result: result,
		Reason: guardrails.RedactString(reason),
	})
}

// Cancel withdraws a pending request; only its requester may.
func (q *Queue) Cancel(ctx context.Context, p store.Principal, id string) (store.Approval, error) {
	a, err := q.store.GetApproval(ctx, p.WorkspaceID, id)
	if err != nil {
		return store.Approval{}, err
	}
	if a.RequesterID != p.MemberID {
		return store.Approval{}, fmt.Errorf("%w: only the requester may cancel approval %s", ErrForbidden, id)
	}
	return q.notified(q.store.TransitionApproval(ctx, a.WorkspaceID, id, store.ApprovalChange{
		From: store.ApprovalPending, To: store.ApprovalCancelled, At: q.now().UTC(), Comment: "cancelled by the requester",
	}))
}

// Begin claims an approved approval for execution (approved -> executing).
// Only one caller ever succeeds, which is what makes execution at most once.
func (q *Queue) Begin(ctx context.Context, a store.Approval) (store.Approval, error) {
	return q.store.TransitionApproval(ctx, a.WorkspaceID, a.ID, store.ApprovalChange{
		From: store.ApprovalApproved, To: store.ApprovalExecuting, At: q.now().UTC(),
	})
}

// Finish records the outcome of an execution (executing -> succeeded or
// failed).
func (q *Queue) Finish(ctx context.Context, a store.Approval, ok bool, outcome string) (store.Approval, error) {
	to := store.ApprovalFailed
	if ok {
		to = store.ApprovalSucceeded
	}
	// The outcome is the tool's answer, which can quote names the caller
	// chose: it is shown to reviewers, so no secret stays in it.
	return q.notified(q.store.TransitionApproval(ctx, a.WorkspaceID, a.ID, store.ApprovalChange{
		From: store.ApprovalExecuting, To: to, At: q.now().UTC(), Outcome: store.RedactSecrets(outcome),
	}))
}

// Expire moves pending approvals past their expiry to expired and returns
// how many it moved. It is safe to run at any time.
func (q *Queue) Expire(ctx context.Context, workspaceID string) (int, error) {
	now := q.now().UTC()
	moved := 0
	pending, err := q.store.ListApprovals(ctx, store.ApprovalFilter{WorkspaceID: workspaceID, State: store.ApprovalPending, Limit: 1000})
	if err != nil {
		return 0, err
	}
	for _, a := range pending {
		if now.Before(a.ExpiresAt) {
			continue
		}
		if _, err := q.expire(ctx, a, now); err == nil {
			moved++
		} else if !errors.Is(err, store.ErrConflict) {
			return moved, err
		}
	}
	return moved, nil
}

// Recover resolves approvals left executing by a crash as failed: their
// action may or may not have run, so it is never run again. Run it once at
// startup, before anything executes approvals; it returns how many it moved.
func (q *Queue) Recover(ctx context.Context, workspaceID string) (int, error) {
	now := q.now().UTC()
	moved := 0
	executing, err := q.store.ListApprovals(ctx, store.ApprovalFilter{WorkspaceID: workspaceID, State: store.ApprovalExecuting, Limit: 1000})
	if err != nil {
		return 0, err
	}
	for _, a := range executing {
		_, err := q.notified(q.store.TransitionApproval(ctx, a.WorkspaceID, a.ID, store.ApprovalChange{
			From: store.ApprovalExecuting, To: store.ApprovalFailed, At: now,
			Outcome: "interrupted while executing (the server stopped); not run again: check the outcome and ask again if needed",
		}))
		if err == nil {
			moved++
		} else if !errors.Is(err, store.ErrConflict) {
			return moved, err
		}
	}
	return moved, nil
}

func (q *Queue) expire(ctx context.Context, a store.Approval, now time.Time) (store.Approval, error) {
	return q.notified(q.store.TransitionApproval(ctx, a.WorkspaceID, a.ID, store.ApprovalChange{
		From: store.ApprovalPending, To: store.ApprovalExpired, At: now, Outcome: "expired without a decision",
	}))
}
