package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/approvals"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

// Tool is one MCP tool as the gate sees it: its spec (name, description,
// input schema, annotations), the permission a caller needs, the kind of
// resource it touches, whether it writes, and its handler. A handler never
// checks permissions or writes audit records: the gate does both.
type Tool struct {
	Spec mcp.Tool
	// Permission is the RBAC permission the caller needs, "" for tools any
	// authenticated caller may use.
	Permission string
	// Resource is the resource type recorded in audit events ("model", ...).
	Resource string
	// Write is true for tools that change state.
	Write   bool
	Handler HandlerFunc
	// Facts, when set, computes what the guardrails need to decide the call
	// (estimated audience size, destination environment, ...) before it
	// runs. It must not change anything: check_action calls it too.
	Facts FactsFunc
	// FactNames are the facts Facts computes, each declared in package
	// guardrails (guardrails.LookupFact), which gives its type and label.
	// The gate denies a call whose facts are not among them or not of
	// their declared type (guardrails.CheckFacts).
	FactNames []string
	// Resolve, when set, finds the objects the call names and checks that
	// the call can run, before the gate queues it for a human: a call it
	// refuses (an unknown id, a delete that dependents block) is never
	// queued. Every tool whose arguments name models or audiences has one.
	// The gate calls it again with the pinned arguments before an approved
	// call runs. It must not change anything.
	Resolve ResolveFunc
	// Target, when set, loads the one existing object the call acts on, as
	// it is now: what the approval page diffs the arguments against. Every
	// tool whose arguments name one existing model, audience, destination
	// or sync has one; a tool that creates has none, as nothing exists yet
	// to diff against. It must not change anything.
	Target TargetFunc
}

// TargetFunc loads the object a call's arguments name, as it is now. The
// arguments are an approval's, which name objects by the ids Resolve
// pinned. call carries the approval's workspace (Principal.WorkspaceID)
// and tool only, and no warehouse: a TargetFunc reads the store. An error
// is internal: the approval page then shows no diff.
type TargetFunc func(ctx context.Context, call *Call, args json.RawMessage) (Current, error)

// Current is the object a TargetFunc found.
type Current struct {
	// ID is the id (or name) the arguments give; "" when they name none.
	ID string
	// Object is the object as a reviewer may see it, with no secret in
	// it; nil when nothing has that id now.
	Object any
}

// targetOf is the TargetFunc of tools whose argument field names the one
// object they act on: get loads it from the call's workspace and view
// (when set) turns it into what a reviewer sees.
func targetOf[T any](field string, get func(ctx context.Context, workspaceID, ref string) (T, error), view func(T) any) TargetFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Current, error) {
		var args map[string]any
		if json.Unmarshal(raw, &args) != nil {
			return Current{}, nil
		}
		ref, _ := args[field].(string)
		if ref == "" {
			return Current{}, nil
		}
		obj, err := get(ctx, call.Principal.WorkspaceID, ref)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return Current{ID: ref}, nil
		case err != nil:
			return Current{ID: ref}, err
		case view != nil:
			return Current{ID: ref, Object: view(obj)}, nil
		}
		return Current{ID: ref, Object: obj}, nil
	}
}

// ResolveFunc resolves the objects a call names, with the caller's view of
// the workspace. A *Error says why the call cannot run; any other error is
// internal.
type ResolveFunc func(ctx context.Context, call *Call, args json.RawMessage) (Resolved, error)

// Resolved is what a ResolveFunc found: the arguments with every object
// named by its id instead of its name (what an approval pins and runs), and
// every object the call touches as it is now.
type Resolved struct {
	Args json.RawMessage
	Pins []store.ApprovalPin
}

// FactsFunc computes the guardrail facts of a call from its arguments, with
// the caller's access filters, by the names the tool declares
// (Tool.FactNames). A *Error is a bad argument the model should fix; any
// other error denies the call.
type FactsFunc func(ctx context.Context, call *Call, args json.RawMessage) (map[string]any, error)

// Operation is the guardrail operation of the tool: the action of its
// permission (read, create, update, delete, trigger), "read" for tools any
// caller may use.
func (t Tool) Operation() string {
	_, action, _ := strings.Cut(t.Permission, ".")
	switch action {
	case "create", "update", "delete", "trigger":
		return action
	case "test":
		return "trigger"
	case "manage", "decide":
		return "update"
	default:
		return "read"
	}
}

// HandlerFunc runs a tool for an authorized call. A failure the model should
// read (bad argument, unknown id) is returned as a *Error; any other error is
// internal and reaches the caller only as "internal error" with a request id.
type HandlerFunc func(ctx context.Context, call *Call, args json.RawMessage) (Output, error)

// Output is a successful tool result: Data is the structured JSON result and
// Text a short rendering for clients that show text only.
type Output struct {
	Data any
	Text string
}

// Call describes the call being handled. The gate creates it; handlers read
// the principal, query the warehouse through Warehouse, and fill in the
// resource id and a result summary for audit.
type Call struct {
	Principal store.Principal
	Tool      string
	// Warehouse is the warehouse bound to the caller (access filters,
	// limits, concurrency caps, PII masking of previews). The gate sets it
	// after RBAC; a nil one refuses every query.
	Warehouse  *Warehouse
	ResourceID string
	// Summary is a short, PII-free description of the result for audit.
	Summary string
	// Facts are what the tool's FactsFunc computed for the guardrails
	// before the call ran, so the handler need not compute them again.
	Facts map[string]any
	// compiled holds the audience definitions compiled during the call
	// (compileAudience), so the facts and the handler compile each once.
	compiled map[string]*compiled
}

// Error is a failure the calling model should see: what was wrong and what
// to do next. Its message must carry no internal detail and no secret.
type Error struct {
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns a *Error with a formatted message.
func Errorf(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

// AsError reports whether err is (or wraps) a *Error meant for the model.
func AsError(err error) (*Error, bool) {
	var te *Error
	ok := errors.As(err, &te)
	return te, ok
}

// Deps are what tool handlers use besides their Call: the metadata store
// and the approval queue. There is no warehouse here on purpose: a tool
// reaches it only through Call.Warehouse, bound to the caller by the gate.
type Deps struct {
	Store Store
	// Check answers what would happen to a call without running it; the
	// server provides it (it is the gate's decision path) for check_action.
	Check CheckFunc
	// Approvals is the approval queue, for cancel_approval.
	Approvals *approvals.Queue
	// ApprovalURL is the web page of an approval.
	ApprovalURL func(id string) string
	// Syncs runs syncs (trigger_sync and its dry run); without it those
	// tools say the server runs no syncs.
	Syncs SyncRunner
}

// Store is what the tools read and change in the metadata store: the
// catalog, the approvals an agent looks up (store.Approvals), the audit
// trail it reads (store.AuditLog), the access filters that apply to it and
// the PII classification its models inherit (store.PIIClassification).
// Through it a tool cannot append audit events, move an approval or change
// filters, keys, roles or settings: the gate and the approval queue
// (Deps.Approvals) do.
type Store interface {
	store.Catalog
	AccessFilterSource
	GetApproval(ctx context.Context, workspaceID, id string) (store.Approval, error)
	ListApprovals(ctx context.Context, f store.ApprovalFilter) ([]store.Approval, error)
	Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
	PIIClasses(ctx context.Context, workspaceID string) ([]store.PIIClass, error)
	GetSyncRun(ctx context.Context, workspaceID, id string) (store.SyncRun, error)
	ListSyncRuns(ctx context.Context, workspaceID, syncID string, limit int) ([]store.SyncRun, error)
}

// CheckFunc decides a call the way the gate would, without side effects.
type CheckFunc func(ctx context.Context, call *Call, tool string, args json.RawMessage) (Check, error)

// Check is check_action's answer.
type Check struct {
	Tool          string         `json:"tool"`
	Permission    string         `json:"permission,omitempty"`
	Effect        string         `json:"effect"`
	Rules         []string       `json:"rules,omitempty"`
	Reason        string         `json:"reason,omitempty"`
	Suggestions   []string       `json:"suggestions,omitempty"`
	Facts         map[string]any `json:"facts,omitempty"`
	PolicyVersion string         `json:"policy_version,omitempty"`
}

// All returns every tool, sorted by name.
func All(d Deps) []Tool {
	var all []Tool
	all = append(all, warehouseTools(d)...)
	all = append(all, modelTools(d)...)
	all = append(all, audienceTools(d)...)
	all = append(all, destinationTools(d)...)
	all = append(all, syncTools(d)...)
	all = append(all, governanceTools(d)...)
	all = append(all, approvalTools(d)...)
	all = append(all, auditTools(d)...)
	sort.Slice(all, func(i, j int) bool { return all[i].Spec.Name < all[j].Spec.Name })
	return all
}

// annotations returns all four annotation hints of a tool that changes
// the workspace's own state (never an open world).
func annotations(title string, readOnly, destructive, idempotent bool) []mcp.ToolOption {
	return []mcp.ToolOption{
		mcp.WithTitleAnnotation(title),
		mcp.WithReadOnlyHintAnnotation(readOnly),
		mcp.WithDestructiveHintAnnotation(destructive),
		mcp.WithIdempotentHintAnnotation(idempotent),
		mcp.WithOpenWorldHintAnnotation(false),
	}
}

// readOnly returns the annotation options of a tool that reads the
// workspace's own data: read-only, not destructive, idempotent, closed world.
// mcp.NewTool defaults to destructive and open-world, so every tool sets all
// four hints explicitly.
func readOnly(title string) []mcp.ToolOption {
	return annotations(title, true, false, true)
}

// decode binds raw JSON arguments to dst strictly: unknown fields, wrong
// types and trailing data are errors the model can act on.
func decode(raw json.RawMessage, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return argumentError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf("invalid arguments: expected a single JSON object")
	}
	return nil
}

// argumentError turns a JSON decoding error into a message naming the field.
func argumentError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return Errorf("invalid arguments: expected a JSON object, got %s", typeErr.Value)
		}
		return Errorf("invalid argument %q: expected %s, got %s", typeErr.Field, jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf("invalid arguments: malformed JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The name is the caller's own text: it may carry a key or be huge.
		field := guardrails.RedactString(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return Errorf("unknown argument %s: check the tool's input schema for the accepted arguments", field)
	default:
		return Errorf("invalid arguments: expected a JSON object matching the tool's input schema")
	}
}

// jsonType names a Go kind the way a JSON Schema would.
func jsonType(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	default:
		return "a " + kind
	}
}

// required returns an error naming the argument when value is empty.
func required(name, value string) error {
	if strings.TrimSpace(value) == "" {
		return Errorf("missing required argument %q", name)
	}
	return nil
}

// notFound turns store.ErrNotFound into an error the model can act on, and
// passes any other error through as internal.
func notFound(err error, what, id, listTool string) error {
	if errors.Is(err, store.ErrNotFound) {
		return Errorf("%s %q not found: call %s to see the available ones", what, guardrails.RedactString(id), listTool)
	}
	return err
}
