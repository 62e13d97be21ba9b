package approvals

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// impact is what the detail page shows of what approving would do: the
// facts the guardrails decided on, and the target object with a diff of
// the arguments against it.
type impact struct {
	Size        string
	SQL         string
	Destination string
	Environment string
	Category    string
	Columns     []column
	Other       []fact

	Target     *target
	NothingTo  string
	TargetNote string
}

// column is a column that would leave, with its PII level when known.
type column struct {
	Name string
	PII  string
}

// fact is any other fact, as JSON.
type fact struct {
	Name  string
	Value string
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

// Well-known fact names (DESIGN.md section 6): what the tools compute
// before the guardrails decide. Others are listed as they come.
var (
	sizeFacts        = []string{"estimated_size", "size", "rows"}
	sqlFacts         = []string{"sql", "compiled_sql"}
	destinationFacts = []string{"destination_name", "destination", "destination_id"}
	environmentFacts = []string{"destination_environment", "environment"}
	categoryFacts    = []string{"destination_category", "category"}
	columnFacts      = []string{"columns", "columns_leaving", "fields"}
	piiFacts         = []string{"pii_levels", "pii"}
)

// impact builds the impact view of a.
func (w *Web) impact(r *http.Request, reqID string, a store.Approval) impact {
	var im impact
	used := map[string]bool{}
	take := func(names []string) (any, bool) {
		for _, n := range names {
			if v, ok := a.Facts[n]; ok && v != nil {
				used[n] = true
				return v, true
			}
		}
		return nil, false
	}
	if v, ok := take(sizeFacts); ok {
		im.Size = number(v)
	}
	if v, ok := take(sqlFacts); ok {
		im.SQL = text(v)
	}
	if v, ok := take(destinationFacts); ok {
		im.Destination = text(v)
	}
	if v, ok := take(environmentFacts); ok {
		im.Environment = text(v)
	}
	if v, ok := take(categoryFacts); ok {
		im.Category = text(v)
	}
	pii := map[string]string{}
	if v, ok := take(piiFacts); ok {
		if m, ok := v.(map[string]any); ok {
			for k, lvl := range m {
				pii[k] = text(lvl)
			}
		}
	}
	if v, ok := take(columnFacts); ok {
		if list, ok := v.([]any); ok {
			for _, c := range list {
				switch c := c.(type) {
				case string:
					im.Columns = append(im.Columns, column{Name: c, PII: pii[c]})
				case map[string]any:
					name := text(c["name"])
					lvl := text(c["pii"])
					if lvl == "" {
						lvl = pii[name]
					}
					im.Columns = append(im.Columns, column{Name: name, PII: lvl})
				}
			}
		}
	}
	if len(im.Columns) == 0 {
		for name, lvl := range pii {
			im.Columns = append(im.Columns, column{Name: name, PII: lvl})
		}
		sort.Slice(im.Columns, func(i, j int) bool { return im.Columns[i].Name < im.Columns[j].Name })
	}
	for name, v := range a.Facts {
		if !used[name] {
			im.Other = append(im.Other, fact{Name: name, Value: text(v)})
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

// number renders a count with thousands separators when it is one.
func number(v any) string {
	f, ok := v.(float64)
	if !ok || f != float64(int64(f)) {
		return text(v)
	}
	n := int64(f)
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
