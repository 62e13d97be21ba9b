package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Approval states (DESIGN.md section 7): pending -> approved -> executing ->
// succeeded | failed; pending -> rejected | expired | cancelled.
const (
	ApprovalPending   = "pending"
	ApprovalApproved  = "approved"
	ApprovalExecuting = "executing"
	ApprovalSucceeded = "succeeded"
	ApprovalFailed    = "failed"
	ApprovalRejected  = "rejected"
	ApprovalExpired   = "expired"
	ApprovalCancelled = "cancelled"
)

// Approval is a queued action waiting for, or past, a human's decision. It
// pins what will run: the tool, its canonical JSON arguments (objects named
// by id, never by name) and their SHA-256, the objects the call touches
// with their versions (Pins), the requester, and the policy version,
// reasons and facts the human reviewed.
type Approval struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	State       string `json:"state"`
	Tool        string `json:"tool"`
	// Args are the canonical JSON arguments; ArgsHash is their SHA-256 in hex.
	Args     json.RawMessage `json:"args"`
	ArgsHash string          `json:"args_hash"`
	// RequesterID is the member whose key asked; RequesterOwnerID the human
	// behind it when the requester is an agent.
	RequesterID      string         `json:"requester_id"`
	RequesterName    string         `json:"requester_name"`
	RequesterKind    string         `json:"requester_kind"`
	RequesterOwnerID string         `json:"requester_owner_id,omitempty"`
	KeyPrefix        string         `json:"key_prefix"`
	Source           string         `json:"source"`
	PolicyVersion    string         `json:"policy_version"`
	Rules            []string       `json:"rules"`
	Reason           string         `json:"reason"`
	Facts            map[string]any `json:"facts,omitempty"`
	CreatedAt        time.Time      `json:"created_at"`
	ExpiresAt        time.Time      `json:"expires_at"`
	DeciderID        string         `json:"decider_id,omitempty"`
	DeciderName      string         `json:"decider_name,omitempty"`
	DecidedAt        *time.Time     `json:"decided_at,omitempty"`
	Comment          string         `json:"comment,omitempty"`
	// Outcome is the stored result (or failure reason) of the execution.
	Outcome   string     `json:"outcome,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	DoneAt    *time.Time `json:"done_at,omitempty"`

	// Pins are the objects the call touches as they were when it was
	// queued; execution fails when any of them changed since.
	Pins []ApprovalPin `json:"pins"`
}

// ApprovalPin is one object an approval's call touches (its target, the
// model an audience is built on, the models and audiences that one reads),
// as it was when the call was queued.
type ApprovalPin struct {
	// Type is "model" or "audience".
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
	// Version is Model.Version or Audience.Version.
	Version int `json:"version"`
}

// approvalMoves is the approval state machine (DESIGN.md section 7): the
// states each state may move to. A state with no entry is terminal
// (Terminal) or unknown.
var approvalMoves = map[string][]string{
	ApprovalPending:   {ApprovalApproved, ApprovalRejected, ApprovalExpired, ApprovalCancelled},
	ApprovalApproved:  {ApprovalExecuting, ApprovalFailed},
	ApprovalExecuting: {ApprovalSucceeded, ApprovalFailed},
}

// Terminal reports whether no transition leaves the state.
func (a Approval) Terminal() bool {
	switch a.State {
	case ApprovalSucceeded, ApprovalFailed, ApprovalRejected, ApprovalExpired, ApprovalCancelled:
		return true
	}
	return false
}

// ApprovalChange is one compare-and-set transition: it applies only while
// the approval is in state From.
type ApprovalChange struct {
	From, To    string
	At          time.Time
	DeciderID   string
	DeciderName string
	Comment     string
	Outcome     string
}

// Check reports whether the state machine allows the move from c.From to
// c.To. It returns an error wrapping ErrInvalid naming both states when it
// does not. Every store calls it before it changes an approval's state, so
// the machine is defined here once and no implementation can extend it.
func (c ApprovalChange) Check() error {
	if !slices.Contains(approvalMoves[c.From], c.To) {
		return fmt.Errorf("approval state cannot move from %q to %q: %w", c.From, c.To, ErrInvalid)
	}
	return nil
}

// ApprovalFilter selects approvals, newest first.
type ApprovalFilter struct {
	WorkspaceID string
	State       string
	RequesterID string
	Tool        string
	// CreatedBefore keeps approvals older than this, when set.
	CreatedBefore time.Time
	Limit         int
}

// ErrPinChanged means an object an approved call pinned changed after the
// executor checked it and before the call's write committed: the store
// refused the write, and nothing was changed.
var ErrPinChanged = errors.New("an object the approval pinned changed")

type pinsKey struct{}

// WithPins returns a context whose store writes commit only while every
// pin still holds: the store checks each pinned object's name and version
// inside the write's own transaction, before it changes anything, and
// refuses the write with an error wrapping ErrPinChanged otherwise. The
// approval executor runs an approved call with its pins, so what a human
// reviewed is what is written, even when another change races the call.
func WithPins(ctx context.Context, pins []ApprovalPin) context.Context {
	if len(pins) == 0 {
		return ctx
	}
	return context.WithValue(ctx, pinsKey{}, pins)
}

// PinsFrom returns the pins of ctx (WithPins), nil when none.
func PinsFrom(ctx context.Context) []ApprovalPin {
	pins, _ := ctx.Value(pinsKey{}).([]ApprovalPin)
	return pins
}
