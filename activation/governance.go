package activation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// Transforms of a mapped field on its way out.
const (
	// TransformNone sends the value as the warehouse holds it.
	TransformNone = "none"
	// TransformSHA256 sends the hex SHA-256 of the value trimmed and
	// lowercased (NULL stays NULL), the form advertising and CRM
	// destinations match hashed emails on.
	TransformSHA256 = "sha256"
	// TransformDrop sends nothing for the field: it is not even read.
	TransformDrop = "drop"
)

// Field is one mapped field as governance lets it leave: the model column
// it is read from, the destination field it is sent as, and its
// transform.
type Field struct {
	Column    string `json:"column"`
	To        string `json:"to"`
	Transform string `json:"transform"`
}

// FieldPlan is what governance lets a sync send: its fields, and the
// per-row rule that keeps members from the destination (counted as
// skipped, never sent).
type FieldPlan struct {
	Fields []Field `json:"fields"`
	// RequireTrue names boolean columns of the model a member must hold
	// true in to be sent, such as marketing_consent for an advertising
	// destination; a member with false or NULL in one is skipped. The
	// columns are read to decide and never sent.
	RequireTrue []string `json:"require_true,omitempty"`
	// MaxRecords, when set, caps the records the run sends: the first
	// MaxRecords of its plan (adds, then changes, then removes, each in
	// key order). The rest are not sent and, since the snapshot does not
	// advance for them, are planned again by the next run (append mode
	// keeps no snapshot: they wait for the next run's full send).
	MaxRecords *int64 `json:"max_records,omitempty"`
}

// PlanInput is what a Governance decides on: the sync, its destination
// and the model its audience is over (columns with their effective PII
// levels).
type PlanInput struct {
	Sync        store.Sync
	Destination store.Destination
	Model       store.Model
}

// Governance decides, at the start of every run, what a sync may send. An
// error wrapping ErrRefused refuses the run with its message, which must
// say what to change; any other error fails the run closed. The engine
// checks the plan again itself: whatever a Governance returns, a blocked
// or unclassified column never leaves.
type Governance interface {
	Plan(ctx context.Context, in PlanInput) (FieldPlan, error)
}

// PIIGovernance is the default Governance, from the PII levels of the
// model's columns alone (DESIGN.md section 3): a blocked or unclassified
// column refuses the run, a redacted column leaves only as its SHA-256
// (TransformSHA256), a sync_only or none column leaves as it is. It keeps
// no member out. Destination filters and consent rules are policies of
// their own, which wrap or replace it.
type PIIGovernance struct{}

// Plan maps each of the sync's mappings to a Field, with the mapping's
// own transform (sha256, drop) when it asks for one; a mapping of an
// unknown column, of a blocked one (even dropped), or two mappings to one
// destination field refuse the run.
func (PIIGovernance) Plan(_ context.Context, in PlanInput) (FieldPlan, error) {
	var plan FieldPlan
	for i, m := range in.Sync.Mappings {
		f, _, err := levelField(i, m, in.Model)
		if err != nil {
			return FieldPlan{}, err
		}
		if err := ownTransform(&f, i, m); err != nil {
			return FieldPlan{}, err
		}
		plan.Fields = append(plan.Fields, f)
	}
	return plan, nil
}

// levelField is mapping i's field as its column's PII level lets it leave:
// as it is (none, sync_only) or hashed (redacted). A mapping of an unknown
// column or of a blocked (or unclassified) one refuses the run.
func levelField(i int, m store.FieldMapping, model store.Model) (Field, store.Column, error) {
	col, ok := model.Column(m.From)
	if !ok {
		return Field{}, store.Column{}, refusef("mapping %d maps %q, which is not a column of model %s: map one of its columns", i+1, m.From, model.Name)
	}
	f := Field{Column: col.Name, To: m.To, Transform: TransformNone}
	switch col.PII {
	case store.PIINone, store.PIISyncOnly:
	case store.PIIRedacted:
		f.Transform = TransformSHA256
	default:
		return Field{}, store.Column{}, refusef("mapping %d maps column %q of model %s, which is blocked: it can never leave the warehouse; remove the mapping", i+1, col.Name, model.Name)
	}
	return f, col, nil
}

// ownTransform applies the sync's own transform of mapping i to f, which
// can make the field stricter, never looser: drop always drops, sha256
// hashes a field that would leave as it is.
func ownTransform(f *Field, i int, m store.FieldMapping) error {
	switch m.Transform {
	case "":
	case store.TransformDrop:
		f.Transform = TransformDrop
	case store.TransformSHA256:
		if f.Transform == TransformNone {
			f.Transform = TransformSHA256
		}
	default:
		return refusef("mapping %d has transform %q: use sha256, drop or none", i+1, m.Transform)
	}
	return nil
}

// checkPlan holds every plan, a custom Governance's too, to what the
// engine can send: known columns, no blocked or unclassified column
// unless dropped, a known transform, one column per destination field and
// boolean columns for RequireTrue.
func checkPlan(plan FieldPlan, m store.Model) error {
	to := make(map[string]bool, len(plan.Fields))
	sent := 0
	for _, f := range plan.Fields {
		col, ok := m.Column(f.Column)
		if !ok {
			return refusef("field %q maps %q, which is not a column of model %s: map one of its columns", f.To, f.Column, m.Name)
		}
		switch f.Transform {
		case TransformDrop:
			continue
		case TransformNone, TransformSHA256:
		default:
			return refusef("field %q has transform %q: use none, sha256 or drop", f.To, f.Transform)
		}
		switch col.PII {
		case store.PIINone, store.PIISyncOnly, store.PIIRedacted:
		default:
			return refusef("field %q maps column %q of model %s, which is blocked: it can never leave the warehouse; remove the mapping", f.To, col.Name, m.Name)
		}
		if f.To == "" || to[f.To] {
			return refusef("destination field %q is mapped more than once or is empty: map each field once", f.To)
		}
		to[f.To] = true
		sent++
	}
	if sent == 0 {
		return refusef("the sync sends no field: map at least one column")
	}
	for _, name := range plan.RequireTrue {
		col, ok := m.Column(name)
		if !ok || col.Type != "boolean" {
			return refusef("the rule on %q needs a boolean column of model %s", name, m.Name)
		}
	}
	return nil
}

// hashValue is TransformSHA256 of one warehouse value.
func hashValue(v any) any {
	var s string
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		s = x
	case []byte:
		s = string(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		s = fmt.Sprint(x)
	}
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(s))))
	return hex.EncodeToString(sum[:])
}
