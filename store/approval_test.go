package store

import (
	"errors"
	"strings"
	"testing"
)

// TestApprovalChangeCheck holds the state machine of DESIGN.md section 7:
// every pair of states, including unknown ones, is allowed exactly when
// the design allows it, and no move leaves a terminal state.
func TestApprovalChangeCheck(t *testing.T) {
	t.Parallel()
	states := []string{ApprovalPending, ApprovalApproved, ApprovalExecuting, ApprovalSucceeded,
		ApprovalFailed, ApprovalRejected, ApprovalExpired, ApprovalCancelled, "", "done"}
	allowed := map[[2]string]bool{
		{ApprovalPending, ApprovalApproved}:    true,
		{ApprovalPending, ApprovalRejected}:    true,
		{ApprovalPending, ApprovalExpired}:     true,
		{ApprovalPending, ApprovalCancelled}:   true,
		{ApprovalApproved, ApprovalExecuting}:  true,
		{ApprovalApproved, ApprovalFailed}:     true,
		{ApprovalExecuting, ApprovalSucceeded}: true,
		{ApprovalExecuting, ApprovalFailed}:    true,
	}
	for _, from := range states {
		for _, to := range states {
			err := ApprovalChange{From: from, To: to}.Check()
			want := allowed[[2]string{from, to}]
			switch {
			case want && err != nil:
				t.Errorf("%q -> %q: %v, want allowed", from, to, err)
			case !want && !errors.Is(err, ErrInvalid):
				t.Errorf("%q -> %q: %v, want ErrInvalid", from, to, err)
			case !want && !strings.Contains(err.Error(), `"`+to+`"`):
				t.Errorf("%q -> %q: %q does not name the target state", from, to, err)
			}
			if want && (Approval{State: from}).Terminal() {
				t.Errorf("%q is Terminal but moves to %q", from, to)
			}
		}
	}
	for _, s := range []string{ApprovalSucceeded, ApprovalFailed, ApprovalRejected, ApprovalExpired, ApprovalCancelled} {
		if !(Approval{State: s}).Terminal() {
			t.Errorf("%q is not Terminal", s)
		}
	}
}
