package approvals

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// States are the approval states, in the order the web queue lists them.
var States = []string{
	store.ApprovalPending, store.ApprovalApproved, store.ApprovalExecuting, store.ApprovalSucceeded,
	store.ApprovalFailed, store.ApprovalRejected, store.ApprovalExpired, store.ApprovalCancelled,
}

// age is one choice of the age filter: approvals requested within, or
// before, a duration ago.
type age struct {
	Value  string
	Label  string
	within bool
	d      time.Duration
}

// ages are the values the age filter takes.
var ages = []age{
	{"within_1h", "Requested in the last hour", true, time.Hour},
	{"within_24h", "Requested in the last 24 hours", true, 24 * time.Hour},
	{"within_7d", "Requested in the last 7 days", true, 7 * 24 * time.Hour},
	{"within_30d", "Requested in the last 30 days", true, 30 * 24 * time.Hour},
	{"older_1h", "Waiting more than 1 hour", false, time.Hour},
	{"older_24h", "Waiting more than 24 hours", false, 24 * time.Hour},
	{"older_7d", "Waiting more than 7 days", false, 7 * 24 * time.Hour},
}

// List limits: the web queue shows webLimit rows; the API takes limit
// from 1 to maxLimit (default defaultLimit).
const (
	webLimit     = 200
	defaultLimit = 50
	maxLimit     = 1000
)

var (
	toolName    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	approvalID  = regexp.MustCompile(`^apr_[A-Za-z0-9-]{1,64}$`)
	requesterRe = regexp.MustCompile(`^[\pL\pN ._@+-]{1,128}$`)
)

// listQuery is a validated list filter: what was asked (to show it back in
// the form) and the store filter it becomes.
type listQuery struct {
	State     string
	Requester string
	Tool      string
	Age       string
	Limit     int
	filter    store.ApprovalFilter
	// newerThan keeps approvals created at or after it, when set.
	newerThan time.Time
}

// invalidf returns an error wrapping store.ErrInvalid whose text is meant
// for the person or script that sent the input.
func invalidf(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// inputError is bad input: its message says what to fix.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }
func (e *inputError) Unwrap() error { return store.ErrInvalid }

// single returns the only value of a query or form field, "" when absent,
// and an error when it is given twice.
func single(v url.Values, name string) (string, error) {
	switch vals := v[name]; len(vals) {
	case 0:
		return "", nil
	case 1:
		return vals[0], nil
	default:
		return "", invalidf("%s is given %d times; give it once", name, len(vals))
	}
}

// onlyFields refuses fields other than the allowed ones.
func onlyFields(v url.Values, what string, allowed ...string) error {
	for name := range v {
		if !slices.Contains(allowed, name) {
			return invalidf("unknown %s field %q; the fields are %s", what, truncate(name, 40), strings.Join(allowed, ", "))
		}
	}
	return nil
}

// parseList validates the list filters of a query: state, requester (a
// member id or name), tool, age and, for the API, limit.
func (w *Web) parseList(ctx context.Context, workspaceID string, q url.Values, withLimit bool) (listQuery, error) {
	allowed := []string{"state", "requester", "tool", "age"}
	if withLimit {
		allowed = append(allowed, "limit")
	}
	var lq listQuery
	if err := onlyFields(q, "filter", allowed...); err != nil {
		return lq, err
	}
	var err error
	fields := []struct {
		name string
		dst  *string
	}{{"state", &lq.State}, {"requester", &lq.Requester}, {"tool", &lq.Tool}, {"age", &lq.Age}}
	for _, f := range fields {
		if *f.dst, err = single(q, f.name); err != nil {
			return lq, err
		}
		*f.dst = strings.TrimSpace(*f.dst)
	}
	lq.filter = store.ApprovalFilter{WorkspaceID: workspaceID, Limit: webLimit}
	if lq.State != "" && lq.State != "all" {
		if !slices.Contains(States, lq.State) {
			return lq, invalidf("state %q is not one of %s (or all)", truncate(lq.State, 40), strings.Join(States, ", "))
		}
		lq.filter.State = lq.State
	}
	if lq.Tool != "" {
		if !toolName.MatchString(lq.Tool) || (len(w.tools) > 0 && !slices.Contains(w.tools, lq.Tool)) {
			return lq, invalidf("tool %q is not a tool of this server", truncate(lq.Tool, 64))
		}
		lq.filter.Tool = lq.Tool
	}
	if lq.Requester != "" {
		if !requesterRe.MatchString(lq.Requester) {
			return lq, invalidf("requester must be a member's id or name")
		}
		id, err := w.memberID(ctx, workspaceID, lq.Requester)
		if err != nil {
			return lq, err
		}
		lq.filter.RequesterID = id
	}
	if lq.Age != "" {
		i := slices.IndexFunc(ages, func(a age) bool { return a.Value == lq.Age })
		if i < 0 {
			vals := make([]string, len(ages))
			for j, a := range ages {
				vals[j] = a.Value
			}
			return lq, invalidf("age %q is not one of %s", truncate(lq.Age, 40), strings.Join(vals, ", "))
		}
		cut := w.now().Add(-ages[i].d)
		if ages[i].within {
			lq.newerThan = cut
		} else {
			lq.filter.CreatedBefore = cut
		}
	}
	if withLimit {
		lq.Limit = defaultLimit
		raw, err := single(q, "limit")
		if err != nil {
			return lq, err
		}
		if raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 || n > maxLimit {
				return lq, invalidf("limit must be a whole number from 1 to %d", maxLimit)
			}
			lq.Limit = n
		}
		lq.filter.Limit = lq.Limit
	}
	return lq, nil
}

// memberID resolves a requester filter, a member id or name, to the id.
func (w *Web) memberID(ctx context.Context, workspaceID, ref string) (string, error) {
	members, err := w.queue.store.Members(ctx, workspaceID)
	if err != nil {
		return "", fmt.Errorf("list members: %w", err)
	}
	for _, m := range members {
		if m.ID == ref || m.Name == ref {
			return m.ID, nil
		}
	}
	return "", invalidf("no member %q in this workspace", truncate(ref, 64))
}

// list runs a validated list filter.
func (w *Web) list(ctx context.Context, lq listQuery) ([]store.Approval, error) {
	list, err := w.queue.store.ListApprovals(ctx, lq.filter)
	if err != nil {
		return nil, err
	}
	if !lq.newerThan.IsZero() {
		// Newest first: the ones in the window are a prefix.
		i := slices.IndexFunc(list, func(a store.Approval) bool { return a.CreatedAt.Before(lq.newerThan) })
		if i >= 0 {
			list = list[:i]
		}
	}
	if list == nil {
		list = []store.Approval{}
	}
	return list, nil
}

// truncate shortens s to at most n bytes of valid UTF-8, for echoing input
// back in an error.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
