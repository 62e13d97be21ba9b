package approvals

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// impact is what the detail page shows of what approving would do: the
// facts the guardrails decided on, each under the label of its
// declaration (guardrails.AllFacts), and the target object with a diff of
// the arguments against it.
type impact struct {
	Facts      []fact
	Dependents []guardrails.Dependent
	// Other are facts without a declaration (recorded before it was
	// removed), by name, as JSON.
	Other []fact

	Target     *target
	NothingTo  string
	TargetNote string
}

// fact is one fact as a person reads it. Class, when set, styles the
// value as a badge.
type fact struct {
	Name  string
	Label string
	Value string
	Class string
}

// target is the current object and how the arguments change it.
type target struct {
	Type    string
	ID      string
	Gone    bool
	Delete  bool
	JSON    string
	Changes []change
	Effect  string
}

// change is one field the arguments set to a value other than the current.
type change struct {
	Field    string
	Current  string
	Proposed string
}

// impact builds the impact view of a.
func (w *Web) impact(r *http.Request, reqID string, a store.Approval) impact {
	var im impact
	for _, f := range guardrails.AllFacts() {
		raw, ok := a.Facts[f.Name]
		if !ok {
			continue
		}
		v, err := f.Value(raw)
		if err != nil {
			// Shown as recorded rather than hidden from the reviewer.
			im.Facts = append(im.Facts, fact{Name: f.Name, Label: f.Label, Value: text(raw)})
			continue
		}
		if deps, ok := v.([]guardrails.Dependent); ok {
			im.Dependents = deps
			continue
		}
		shown := fact{Name: f.Name, Label: f.Label, Value: factText(v)}
		if f.Name == "destination_environment" {
			shown.Class = "env env-" + shown.Value
		}
		im.Facts = append(im.Facts, shown)
	}
	for name, v := range a.Facts {
		if _, ok := guardrails.LookupFact(name); !ok {
			im.Other = append(im.Other, fact{Name: name, Label: name, Value: text(v)})
		}
	}
	sort.Slice(im.Other, func(i, j int) bool { return im.Other[i].Name < im.Other[j].Name })

	if w.target == nil {
		im.NothingTo = "This server does not look up the objects approvals act on, so there is nothing to diff."
		return im
	}
	t, err := w.target(r.Context(), a)
	if err != nil {
		w.log.Error("approval target", "request_id", reqID, "approval", a.ID, "err", err)
		im.TargetNote = "The current object could not be read (request id " + reqID + "), so no diff is shown."
		return im
	}
	switch {
	case t.ID == "" && t.Operation == "create":
		im.NothingTo = "The call creates a new " + orDefault(t.Type, "object") + ": nothing exists yet to diff against."
	case t.ID == "":
		im.NothingTo = "The arguments name no existing object, so there is nothing to diff."
	default:
		im.Target = diff(t, a.Args, a.State == store.ApprovalPending)
	}
	return im
}

// diff compares the arguments with the target's current JSON: every
// argument that names a field of the object with another value. pending
// says whether the call may still run.
func diff(t Target, args json.RawMessage, pending bool) *target {
	out := &target{Type: t.Type, ID: t.ID, Delete: t.Operation == "delete"}
	if t.Object == nil {
		out.Gone = true
		out.Effect = fmt.Sprintf("There is no %s %q now.", t.Type, t.ID)
		if pending {
			out.Effect += " If approved, the call will fail or change nothing."
		}
		return out
	}
	out.JSON = pretty(t.Object)
	switch t.Operation {
	case "delete":
		out.Effect = "Approving deletes this " + t.Type + "."
	case "read":
		out.Effect = "The call reads this " + t.Type + "; it changes nothing."
	case "trigger":
		out.Effect = "The call runs this " + t.Type + "."
	}
	var obj, in map[string]json.RawMessage
	if json.Unmarshal(t.Object, &obj) != nil || json.Unmarshal(args, &in) != nil {
		return out
	}
	for field, proposed := range in {
		if field == t.Type || field == "id" {
			continue
		}
		current, ok := obj[field]
		if !ok || jsonEqual(current, proposed) {
			continue
		}
		out.Changes = append(out.Changes, change{Field: field, Current: compact(current), Proposed: compact(proposed)})
	}
	sort.Slice(out.Changes, func(i, j int) bool { return out.Changes[i].Field < out.Changes[j].Field })
	if t.Operation == "update" && len(out.Changes) == 0 {
		out.Effect = "The arguments set no field of this " + t.Type + " to a new value."
	}
	return out
}

// jsonEqual compares two JSON values by meaning.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func compact(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}

// text renders a fact value: strings as they are, anything else as JSON.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}

// factText renders a typed fact value (guardrails.Fact.Value): counts
// with thousands separators, other numbers with at most two decimals,
// flags as yes or no.
func factText(v any) string {
	switch v := v.(type) {
	case int64:
		return number(v)
	case float64:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	case bool:
		if v {
			return "yes"
		}
		return "no"
	}
	return text(v)
}

// number renders a count with thousands separators.
func number(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}
