package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/signalsmith/agent-server/activation"
	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
)

type listSyncsArgs struct{}

type syncArgs struct {
	Sync string `json:"sync" jsonschema:"the sync's id (syn_...), from list_syncs"`
}

func syncTools(d Deps) []Tool {
	return append([]Tool{
		{
			Spec: mcp.NewTool("list_syncs", append(readOnly("List syncs"),
				mcp.WithDescription("List the syncs of the workspace: which audience goes to which destination, in which mode (upsert, mirror, append), on which schedule, and whether it is active or paused."),
				mcp.WithInputSchema[listSyncsArgs]())...),
			Permission: "syncs.read",
			Resource:   "sync",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				if err := decode(raw, &listSyncsArgs{}); err != nil {
					return Output{}, err
				}
				all, err := d.Store.ListSyncs(ctx, call.Principal.WorkspaceID)
				if err != nil {
					return Output{}, fmt.Errorf("list syncs: %w", err)
				}
				lines := make([]string, len(all))
				for i, s := range all {
					lines[i] = fmt.Sprintf("%s: %s -> %s (%s, %s)", s.ID, s.AudienceID, s.DestinationID, s.Mode, s.State)
				}
				call.Summary = fmt.Sprintf("%d syncs", len(all))
				return Output{Data: map[string]any{"syncs": all}, Text: "Syncs: " + strings.Join(lines, "; ")}, nil
			},
		},
		{
			Spec: mcp.NewTool("get_sync", append(readOnly("Get a sync"),
				mcp.WithDescription("Show one sync: its audience, destination, field mappings, mode, schedule and state."),
				mcp.WithInputSchema[syncArgs]())...),
			Permission: "syncs.read",
			Resource:   "sync",
			Target:     syncTarget(d),
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args syncArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				if err := required("sync", args.Sync); err != nil {
					return Output{}, err
				}
				s, err := d.Store.GetSync(ctx, call.Principal.WorkspaceID, args.Sync)
				if err != nil {
					return Output{}, notFound(err, "sync", args.Sync, "list_syncs")
				}
				call.ResourceID = s.ID
				call.Summary = "sync " + s.ID
				return Output{Data: s, Text: fmt.Sprintf("Sync %s: audience %s -> destination %s, %s, %s, schedule %s", s.ID, s.AudienceID, s.DestinationID, s.Mode, s.State, s.Schedule)}, nil
			},
		},
	}, syncWriteTools(d)...)
}

// syncTarget is the Target of the tools that act on one sync.
func syncTarget(d Deps) TargetFunc {
	return targetOf("sync", func(ctx context.Context, workspaceID, ref string) (store.Sync, error) {
		return d.Store.GetSync(ctx, workspaceID, ref)
	}, nil)
}

// The sync write tools. Each checks what it would store the way the sync
// engine will run it (checkDraft), before the decision, so a call with an
// unknown column, a blocked one, a bad schedule or a destination of
// another workspace is refused at once and never queued for a human.

type createSyncArgs struct {
	Audience    string               `json:"audience"`
	Destination string               `json:"destination"`
	Mappings    []store.FieldMapping `json:"mappings"`
	Mode        string               `json:"mode"`
	Schedule    string               `json:"schedule,omitempty"`
}

type updateSyncArgs struct {
	Sync        string                `json:"sync"`
	Audience    *string               `json:"audience,omitempty"`
	Destination *string               `json:"destination,omitempty"`
	Mappings    *[]store.FieldMapping `json:"mappings,omitempty"`
	Mode        *string               `json:"mode,omitempty"`
	Schedule    *string               `json:"schedule,omitempty"`
}

type triggerSyncArgs struct {
	Sync   string `json:"sync" jsonschema:"the sync's id (syn_...), from list_syncs"`
	DryRun bool   `json:"dry_run,omitempty" jsonschema:"count what a run would add, change and remove, without sending anything"`
}

type listSyncRunsArgs struct {
	Sync  string `json:"sync" jsonschema:"the sync's id (syn_...), from list_syncs"`
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many runs, newest first (default 20, at most 100)"`
}

type syncRunArgs struct {
	Run string `json:"run" jsonschema:"the run's id (run_...), from trigger_sync or list_sync_runs"`
}

// SyncRunner runs syncs for the sync tools: the server's scheduler, whose
// engine holds the warehouse and planner it needs at wiring time (a tool
// never holds either). activation.Scheduler is one.
type SyncRunner interface {
	// DryRun counts what a run of the sync would send now, sending
	// nothing (activation.Engine.DryRun).
	DryRun(ctx context.Context, workspaceID, syncID string) (activation.DryRun, error)
	// Trigger starts a run in the background and returns it as recorded
	// at its start (activation.Scheduler.Trigger).
	Trigger(ctx context.Context, req activation.Request, by store.Principal) (store.SyncRun, error)
}

// syncFactNames are the facts of create_sync and update_sync.
var syncFactNames = []string{"destination", "destination_environment", "destination_category",
	"mapped_columns", "mapped_redacted", "mapped_sync_only"}

// syncStateFactNames are the facts of pause_sync, resume_sync and
// delete_sync.
var syncStateFactNames = []string{"destination", "destination_environment", "destination_category"}

// triggerFactNames are the facts of trigger_sync. The dry-run counts are
// counted with the owner's access filters, not the caller's: a caller with
// filters never reads them back (caller_filtered).
var triggerFactNames = append(slices.Clone(syncFactNames), "dry_run_added", "dry_run_changed", "dry_run_removed",
	"dry_run_skipped", "destination_members", "dry_run_change_pct", "caller_filtered")

func mappingsProp() map[string]any {
	return map[string]any{
		"type":        "array",
		"description": "model column -> destination field, each with an optional transform: sha256 (hash the trimmed, lowercased value) or drop (do not send). Redacted columns always leave hashed; blocked columns can never be mapped.",
		"items": map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"from", "to"},
			"properties": map[string]any{
				"from":      stringProp("a column of the audience's model"),
				"to":        stringProp("the destination field, unique in the sync"),
				"transform": map[string]any{"type": "string", "enum": []string{"sha256", "drop"}},
			},
		},
	}
}

func modeProp() map[string]any {
	return map[string]any{"type": "string", "enum": []string{"upsert", "mirror", "append"},
		"description": "upsert: send new and changed members; mirror: also remove those who left; append: send every member each run"}
}

func scheduleProp() map[string]any {
	return stringProp(`when the sync runs by itself: an interval ("1h", at least 1m) or a 5-field cron expression in UTC ("0 3 * * *"); empty for runs only on trigger_sync`)
}

func syncWriteTools(d Deps) []Tool {
	return []Tool{
		{
			Spec: mcp.NewTool("create_sync", append(annotations("Create a sync", false, false, false),
				mcp.WithDescription("Create a sync that sends a saved audience to a destination: field mappings, a mode and an optional schedule. The sync starts active and runs with your human's access. Syncs to production destinations wait for a human's approval; use a sandbox destination to test."),
				rawInputSchema(inputSchema(map[string]any{
					"audience":    stringProp("the audience to send: its id (aud_...) or name"),
					"destination": stringProp("where to send it: the destination's id (dst_...) or name, from list_destinations"),
					"mappings":    mappingsProp(),
					"mode":        modeProp(),
					"schedule":    scheduleProp(),
				}, "audience", "destination", "mappings", "mode")))...),
			Permission: "syncs.create",
			Resource:   "sync",
			Write:      true,
			FactNames:  syncFactNames,
			Resolve: func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
				dr, err := createDraft(ctx, d, call, raw)
				if err != nil {
					return Resolved{}, err
				}
				out, err := withIDs(raw, func(obj map[string]any) {
					obj["audience"], obj["destination"] = dr.aud.ID, dr.dest.ID
				})
				return Resolved{Args: out, Pins: dr.pins}, err
			},
			Facts: func(ctx context.Context, call *Call, raw json.RawMessage) (map[string]any, error) {
				dr, err := createDraft(ctx, d, call, raw)
				if err != nil {
					return nil, err
				}
				return dr.facts(), nil
			},
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				dr, err := createDraft(ctx, d, call, raw)
				if err != nil {
					return Output{}, err
				}
				s := dr.sync
				s.OwnerID = call.Principal.Human()
				call.Summary = fmt.Sprintf("sync of audience %s to destination %s", dr.aud.ID, dr.dest.ID)
				s, err = d.Store.CreateSync(ctx, s)
				if err != nil {
					return Output{}, storeError(err, "sync", dr.aud.Name)
				}
				call.ResourceID = s.ID
				return Output{Data: s, Text: fmt.Sprintf("Created sync %s: audience %s -> destination %s (%s, %s), %s. Run it with trigger_sync (dry_run first to see what it would send).",
					s.ID, dr.aud.ID, dr.dest.Name, dr.dest.Environment, dr.dest.Category, s.Mode)}, nil
			},
		},
		{
			Spec: mcp.NewTool("update_sync", append(annotations("Update a sync", false, false, true),
				mcp.WithDescription("Change a sync's audience, destination, mappings, mode or schedule (the fields you give; the others stay). Changes of syncs to production destinations wait for a human's approval."),
				rawInputSchema(inputSchema(map[string]any{
					"sync":        stringProp("the sync's id (syn_...), from list_syncs"),
					"audience":    stringProp("a new audience: its id or name"),
					"destination": stringProp("a new destination: its id or name"),
					"mappings":    mappingsProp(),
					"mode":        modeProp(),
					"schedule":    scheduleProp(),
				}, "sync")))...),
			Permission: "syncs.update",
			Resource:   "sync",
			Write:      true,
			FactNames:  syncFactNames,
			Target:     syncTarget(d),
			Resolve: func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
				dr, err := updateDraft(ctx, d, call, raw)
				if err != nil {
					return Resolved{}, err
				}
				out, err := withIDs(raw, func(obj map[string]any) {
					obj["sync"] = dr.sync.ID
					if _, ok := obj["audience"]; ok {
						obj["audience"] = dr.aud.ID
					}
					if _, ok := obj["destination"]; ok {
						obj["destination"] = dr.dest.ID
					}
				})
				return Resolved{Args: out, Pins: dr.pins}, err
			},
			Facts: func(ctx context.Context, call *Call, raw json.RawMessage) (map[string]any, error) {
				dr, err := updateDraft(ctx, d, call, raw)
				if err != nil {
					return nil, err
				}
				return dr.facts(), nil
			},
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				dr, err := updateDraft(ctx, d, call, raw)
				if err != nil {
					return Output{}, err
				}
				call.ResourceID, call.Summary = dr.sync.ID, "sync "+dr.sync.ID+" updated"
				s, err := d.Store.UpdateSync(ctx, dr.sync)
				if err != nil {
					return Output{}, storeError(err, "sync", dr.sync.ID)
				}
				return Output{Data: s, Text: fmt.Sprintf("Updated sync %s: audience %s -> destination %s, %s, schedule %q", s.ID, s.AudienceID, dr.dest.Name, s.Mode, s.Schedule)}, nil
			},
		},
		syncStateTool(d, "pause_sync", "Pause a sync", "Pause a sync: it stops running on its schedule and cannot be triggered until resume_sync. A run in progress finishes.", "paused"),
		syncStateTool(d, "resume_sync", "Resume a sync", "Resume a paused sync: it runs on its schedule again. Resuming a sync to a production destination waits for a human's approval.", "active"),
		{
			Spec: mcp.NewTool("delete_sync", append(annotations("Delete a sync", false, true, true),
				mcp.WithDescription("Delete a sync and its run history. What the destination holds stays there. Deletions wait for a human's approval."),
				mcp.WithInputSchema[syncArgs]())...),
			Permission: "syncs.delete",
			Resource:   "sync",
			Write:      true,
			FactNames:  syncStateFactNames,
			Target:     syncTarget(d),
			Resolve:    resolveSync(d, false),
			Facts:      syncStateFacts(d),
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				s, _, err := loadSync(ctx, d, call, raw)
				if err != nil {
					return Output{}, err
				}
				call.ResourceID, call.Summary = s.ID, "sync "+s.ID+" deleted"
				if err := d.Store.DeleteSync(ctx, s.WorkspaceID, s.ID); err != nil {
					return Output{}, storeError(err, "sync", s.ID)
				}
				return Output{Data: map[string]any{"deleted": s.ID}, Text: "Deleted sync " + s.ID}, nil
			},
		},
		{
			Spec: mcp.NewTool("trigger_sync", append(annotations("Run a sync", false, false, false),
				mcp.WithDescription("Run a sync now. It returns at once with the run's id; follow it with get_sync_run. With dry_run it only counts what a run would add, change and remove, and sends nothing. Runs of syncs to production destinations wait for a human's approval (a dry run does not)."),
				mcp.WithInputSchema[triggerSyncArgs]())...),
			Permission: "syncs.trigger",
			Resource:   "sync",
			Write:      true,
			FactNames:  triggerFactNames,
			Target:     syncTarget(d),
			Resolve:    resolveSync(d, true),
			Facts: func(ctx context.Context, call *Call, raw json.RawMessage) (map[string]any, error) {
				dr, err := storedDraft(ctx, d, call, raw)
				if err != nil {
					return nil, err
				}
				run, err := dryRun(ctx, d, dr.sync)
				if err != nil {
					return nil, err
				}
				filtered, err := call.Warehouse.Filtered(ctx)
				if err != nil {
					return nil, err
				}
				f := dr.facts()
				f["caller_filtered"] = filtered
				moved := run.Added + run.Changed + run.Removed
				f["dry_run_added"], f["dry_run_changed"], f["dry_run_removed"] = run.Added, run.Changed, run.Removed
				f["dry_run_skipped"], f["destination_members"] = run.Skipped, run.Held
				f["dry_run_change_pct"] = float64(moved) * 100 / float64(max(run.Held, 1))
				return f, nil
			},
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args triggerSyncArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				s, _, err := loadSync(ctx, d, call, raw)
				if err != nil {
					return Output{}, err
				}
				call.ResourceID = s.ID
				if args.DryRun {
					run, err := dryRun(ctx, d, s)
					if err != nil {
						return Output{}, err
					}
					call.Summary = fmt.Sprintf("dry run of sync %s: %d to add, %d to change, %d to remove", s.ID, run.Added, run.Changed, run.Removed)
					return Output{Data: map[string]any{"sync_id": s.ID, "dry_run": true, "added": run.Added, "changed": run.Changed,
						"removed": run.Removed, "skipped": run.Skipped, "destination_members": run.Held, "fields": run.Fields},
						Text: fmt.Sprintf("A run of sync %s now would add %d, change %d and remove %d members (%d kept out by governance); nothing was sent.",
							s.ID, run.Added, run.Changed, run.Removed, run.Skipped)}, nil
				}
				if d.Syncs == nil {
					return Output{}, errNoRunner
				}
				rec, err := d.Syncs.Trigger(ctx, activation.Request{WorkspaceID: s.WorkspaceID, SyncID: s.ID,
					Trigger: activation.TriggerManual, Source: store.SourceAI}, call.Principal)
				if err != nil {
					return Output{}, runError(err, s.ID)
				}
				call.Summary = "sync " + s.ID + " run " + rec.ID + " started"
				return Output{Data: rec, Text: fmt.Sprintf("Sync %s run %s started; follow it with get_sync_run.", s.ID, rec.ID)}, nil
			},
		},
		{
			Spec: mcp.NewTool("get_sync_run", append(readOnly("Get a sync run"),
				mcp.WithDescription("Show one run of a sync: its state (running, succeeded, failed), trigger, counts of members added, changed, removed, failed and skipped so far, and its error."),
				mcp.WithInputSchema[syncRunArgs]())...),
			Permission: "syncs.read",
			Resource:   "sync",
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args syncRunArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				if err := required("run", args.Run); err != nil {
					return Output{}, err
				}
				r, err := d.Store.GetSyncRun(ctx, call.Principal.WorkspaceID, args.Run)
				if err != nil {
					return Output{}, notFound(err, "sync run", args.Run, "list_sync_runs")
				}
				call.ResourceID, call.Summary = r.SyncID, "sync run "+r.ID
				return Output{Data: r, Text: runText(r)}, nil
			},
		},
		{
			Spec: mcp.NewTool("list_sync_runs", append(readOnly("List sync runs"),
				mcp.WithDescription("List a sync's runs, newest first, with their states and counts."),
				mcp.WithInputSchema[listSyncRunsArgs]())...),
			Permission: "syncs.read",
			Resource:   "sync",
			Target:     syncTarget(d),
			Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
				var args listSyncRunsArgs
				if err := decode(raw, &args); err != nil {
					return Output{}, err
				}
				s, _, err := loadSync(ctx, d, call, raw)
				if err != nil {
					return Output{}, err
				}
				limit := args.Limit
				if limit <= 0 {
					limit = 20
				}
				runs, err := d.Store.ListSyncRuns(ctx, s.WorkspaceID, s.ID, min(limit, 100))
				if err != nil {
					return Output{}, fmt.Errorf("list sync runs: %w", err)
				}
				if runs == nil {
					runs = []store.SyncRun{}
				}
				lines := make([]string, len(runs))
				for i, r := range runs {
					lines[i] = runText(r)
				}
				call.ResourceID, call.Summary = s.ID, fmt.Sprintf("%d runs", len(runs))
				return Output{Data: map[string]any{"runs": runs}, Text: strings.Join(lines, "\n")}, nil
			},
		},
	}
}

// syncStateTool is pause_sync or resume_sync: the sync in state.
func syncStateTool(d Deps, name, title, desc, state string) Tool {
	resuming := state == "active"
	return Tool{
		Spec: mcp.NewTool(name, append(annotations(title, false, false, true),
			mcp.WithDescription(desc), mcp.WithInputSchema[syncArgs]())...),
		Permission: "syncs.update",
		Resource:   "sync",
		Write:      true,
		FactNames:  syncStateFactNames,
		Target:     syncTarget(d),
		Resolve:    resolveSync(d, resuming),
		Facts:      syncStateFacts(d),
		Handler: func(ctx context.Context, call *Call, raw json.RawMessage) (Output, error) {
			s, _, err := loadSync(ctx, d, call, raw)
			if err != nil {
				return Output{}, err
			}
			if resuming {
				// A sync runs again only as it would be created now.
				if _, err := checkDraft(ctx, d, call, s, s.AudienceID, s.DestinationID); err != nil {
					return Output{}, err
				}
			}
			s.State = state
			call.ResourceID, call.Summary = s.ID, "sync "+s.ID+" "+state
			if s, err = d.Store.UpdateSync(ctx, s); err != nil {
				return Output{}, storeError(err, "sync", s.ID)
			}
			return Output{Data: s, Text: fmt.Sprintf("Sync %s is %s.", s.ID, state)}, nil
		},
	}
}

// errNoRunner is what trigger_sync says on a server without a sync engine.
var errNoRunner = Errorf("this server runs no syncs (it was started without its sync engine): ask an operator")

// runError turns an engine error into what the model should read.
func runError(err error, syncID string) error {
	var te *Error
	switch {
	case errors.As(err, &te):
		return te
	case errors.Is(err, activation.ErrRefused):
		return Errorf("sync %s cannot run: %s", syncID, strings.TrimSuffix(err.Error(), ": "+activation.ErrRefused.Error()))
	case errors.Is(err, activation.ErrBusy):
		return Errorf("a run of sync %s is in progress: follow it with list_sync_runs and get_sync_run, and trigger again when it ended", syncID)
	case errors.Is(err, activation.ErrInterrupted):
		return Errorf("the server is stopping, so sync %s did not start: try again later", syncID)
	}
	return err
}

// dryRun runs the engine's dry run of a stored sync.
func dryRun(ctx context.Context, d Deps, s store.Sync) (activation.DryRun, error) {
	if d.Syncs == nil {
		return activation.DryRun{}, errNoRunner
	}
	run, err := d.Syncs.DryRun(ctx, s.WorkspaceID, s.ID)
	if err != nil {
		return activation.DryRun{}, runError(err, s.ID)
	}
	return run, nil
}

// runText is a short line about a run.
func runText(r store.SyncRun) string {
	t := fmt.Sprintf("Run %s of sync %s: %s (%s), %d added, %d changed, %d removed, %d failed, %d skipped",
		r.ID, r.SyncID, r.State, r.Trigger, r.Added, r.Changed, r.Removed, r.Failed, r.Skipped)
	if r.Error != "" {
		t += ": " + r.Error
	}
	return t
}

// draft is a sync as a call would store it, checked, with what it names
// and what it would send.
type draft struct {
	sync  store.Sync
	aud   store.Audience
	dest  store.Destination
	model store.Model
	// fields are the mapped columns as they would leave.
	fields []mappedField
	pins   []store.ApprovalPin
}

// mappedField is one mapped column with its level and transform.
type mappedField struct {
	column, to, pii, transform string
}

// facts are the draft's guardrail facts (syncFactNames).
func (dr *draft) facts() map[string]any {
	parts := make([]string, len(dr.fields))
	var redacted, syncOnly int64
	for i, f := range dr.fields {
		parts[i] = fmt.Sprintf("%s -> %s (%s, %s)", f.column, f.to, f.pii, f.transform)
		if f.transform == activation.TransformDrop {
			continue
		}
		switch f.pii {
		case store.PIIRedacted:
			redacted++
		case store.PIISyncOnly:
			syncOnly++
		}
	}
	return map[string]any{
		"destination": dr.dest.Name, "destination_environment": dr.dest.Environment,
		"destination_category": dr.dest.Category, "mapped_columns": strings.Join(parts, "; "),
		"mapped_redacted": redacted, "mapped_sync_only": syncOnly,
	}
}

// createDraft checks create_sync's arguments.
func createDraft(ctx context.Context, d Deps, call *Call, raw json.RawMessage) (*draft, error) {
	var args createSyncArgs
	if err := decode(raw, &args); err != nil {
		return nil, err
	}
	for _, r := range [][2]string{{"audience", args.Audience}, {"destination", args.Destination}, {"mode", args.Mode}} {
		if err := required(r[0], r[1]); err != nil {
			return nil, err
		}
	}
	s := store.Sync{WorkspaceID: call.Principal.WorkspaceID, Mode: args.Mode, Schedule: args.Schedule,
		State: "active", Mappings: args.Mappings}
	return checkDraft(ctx, d, call, s, args.Audience, args.Destination)
}

// updateDraft checks update_sync's arguments over the stored sync.
func updateDraft(ctx context.Context, d Deps, call *Call, raw json.RawMessage) (*draft, error) {
	var args updateSyncArgs
	if err := decode(raw, &args); err != nil {
		return nil, err
	}
	s, _, err := loadSync(ctx, d, call, raw)
	if err != nil {
		return nil, err
	}
	aud, dest := s.AudienceID, s.DestinationID
	if args.Audience != nil {
		aud = *args.Audience
	}
	if args.Destination != nil {
		dest = *args.Destination
	}
	if args.Mappings != nil {
		s.Mappings = *args.Mappings
	}
	if args.Mode != nil {
		s.Mode = *args.Mode
	}
	if args.Schedule != nil {
		s.Schedule = *args.Schedule
	}
	return checkDraft(ctx, d, call, s, aud, dest)
}

// storedDraft is the stored sync named by the arguments as a draft.
func storedDraft(ctx context.Context, d Deps, call *Call, raw json.RawMessage) (*draft, error) {
	s, _, err := loadSync(ctx, d, call, raw)
	if err != nil {
		return nil, err
	}
	return checkDraft(ctx, d, call, s, s.AudienceID, s.DestinationID)
}

// checkDraft checks a sync as it would be stored: the audience and the
// destination (an id or a name, of the caller's workspace), the mode, the
// schedule and every mapping against the audience's model and its PII
// levels, the way the engine's governance will (activation.PIIGovernance).
// A *Error says what to change.
func checkDraft(ctx context.Context, d Deps, call *Call, s store.Sync, audRef, destRef string) (*draft, error) {
	aud, err := findAudience(ctx, d, call, audRef)
	if err != nil {
		return nil, err
	}
	dest, err := findDestination(ctx, d, call, destRef)
	if err != nil {
		return nil, err
	}
	switch s.Mode {
	case "upsert", "mirror", "append":
	default:
		return nil, Errorf("mode %q is not one of upsert, mirror, append: choose one", guardrails.RedactString(s.Mode))
	}
	if _, err := activation.ParseSchedule(s.Schedule); err != nil {
		return nil, Errorf("invalid schedule: %v", err)
	}
	c, err := compileStored(ctx, d, call, aud)
	if err != nil {
		return nil, err
	}
	m := c.model
	if m.PrimaryKey == "" {
		return nil, Errorf("model %s has no primary key to identify members by: give it one with update_model", m.Name)
	}
	if len(s.Mappings) == 0 {
		return nil, Errorf("the sync maps no column: give mappings, such as [{\"from\": \"email\", \"to\": \"email\"}]")
	}
	dr := &draft{aud: aud, dest: dest, model: m}
	seen := map[string]bool{}
	sent := 0
	for i, fm := range s.Mappings {
		col, ok := m.Column(fm.From)
		if !ok {
			names := make([]string, len(m.Columns))
			for j, c := range m.Columns {
				names[j] = c.Name
			}
			return nil, Errorf("mapping %d: %s is not a column of model %s: map one of %s", i+1, quoted(fm.From), m.Name, strings.Join(names, ", "))
		}
		if col.PII != store.PIINone && col.PII != store.PIISyncOnly && col.PII != store.PIIRedacted {
			return nil, Errorf("mapping %d: column %s of model %s is blocked: it can never leave the warehouse; remove the mapping", i+1, col.Name, m.Name)
		}
		to := strings.TrimSpace(fm.To)
		if to == "" || to != fm.To {
			return nil, Errorf("mapping %d: the destination field (to) is empty or has spaces around it: name the field", i+1)
		}
		if seen[to] {
			return nil, Errorf("mapping %d: destination field %s is mapped twice: map each field once", i+1, quoted(to))
		}
		seen[to] = true
		transform := activation.TransformNone
		switch fm.Transform {
		case "":
			if col.PII == store.PIIRedacted {
				transform = activation.TransformSHA256
			}
		case store.TransformSHA256:
			transform = activation.TransformSHA256
		case store.TransformDrop:
			transform = activation.TransformDrop
		default:
			return nil, Errorf("mapping %d: transform %s is not sha256 or drop: use one, or leave it out", i+1, quoted(fm.Transform))
		}
		if transform != activation.TransformDrop {
			sent++
		}
		s.Mappings[i].From = col.Name
		dr.fields = append(dr.fields, mappedField{column: col.Name, to: to, pii: col.PII, transform: transform})
	}
	if sent == 0 {
		return nil, Errorf("every mapping is dropped, so the sync would send nothing: map at least one column without drop")
	}
	s.AudienceID, s.DestinationID = aud.ID, dest.ID
	dr.sync = s
	dr.pins = pinSet([]store.ApprovalPin{audiencePin(aud)}, c.pins)
	return dr, nil
}

// quoted is caller text in a message: redacted and bounded.
func quoted(s string) string { return fmt.Sprintf("%q", guardrails.RedactString(s)) }

// findAudience finds an audience of the caller's workspace by id or name.
func findAudience(ctx context.Context, d Deps, call *Call, ref string) (store.Audience, error) {
	if err := required("audience", ref); err != nil {
		return store.Audience{}, err
	}
	a, err := d.Store.GetAudience(ctx, call.Principal.WorkspaceID, ref)
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Audience{}, err
	}
	all, err := d.Store.ListAudiences(ctx, call.Principal.WorkspaceID)
	if err != nil {
		return store.Audience{}, err
	}
	for _, a := range all {
		if a.Name == ref {
			return a, nil
		}
	}
	return store.Audience{}, notFound(store.ErrNotFound, "audience", ref, "list_audiences")
}

// findDestination finds a destination of the caller's workspace by id or
// name; one of another workspace is not found.
func findDestination(ctx context.Context, d Deps, call *Call, ref string) (store.Destination, error) {
	if err := required("destination", ref); err != nil {
		return store.Destination{}, err
	}
	x, err := d.Store.GetDestination(ctx, call.Principal.WorkspaceID, ref)
	if err == nil {
		return x, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Destination{}, err
	}
	all, err := d.Store.ListDestinations(ctx, call.Principal.WorkspaceID)
	if err != nil {
		return store.Destination{}, err
	}
	for _, x := range all {
		if x.Name == ref {
			return x, nil
		}
	}
	return store.Destination{}, notFound(store.ErrNotFound, "destination", ref, "list_destinations")
}

// loadSync loads the sync the "sync" argument names.
func loadSync(ctx context.Context, d Deps, call *Call, raw json.RawMessage) (store.Sync, string, error) {
	var args struct {
		Sync string `json:"sync"`
	}
	if json.Unmarshal(raw, &args) != nil {
		return store.Sync{}, "", Errorf("invalid arguments: expected a JSON object matching the tool's input schema")
	}
	if err := required("sync", args.Sync); err != nil {
		return store.Sync{}, "", err
	}
	s, err := d.Store.GetSync(ctx, call.Principal.WorkspaceID, args.Sync)
	if err != nil {
		return store.Sync{}, "", notFound(err, "sync", args.Sync, "list_syncs")
	}
	return s, args.Sync, nil
}

// resolveSync is the Resolve of the tools that act on one stored sync:
// the sync by id and, when checking is set (resume_sync, trigger_sync),
// the sync checked as it would run, with its audience pinned.
func resolveSync(d Deps, checking bool) ResolveFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (Resolved, error) {
		s, _, err := loadSync(ctx, d, call, raw)
		if err != nil {
			return Resolved{}, err
		}
		var pins []store.ApprovalPin
		if checking {
			dr, err := checkDraft(ctx, d, call, s, s.AudienceID, s.DestinationID)
			if err != nil {
				return Resolved{}, err
			}
			pins = dr.pins
		}
		out, err := withIDs(raw, func(obj map[string]any) { obj["sync"] = s.ID })
		return Resolved{Args: out, Pins: pins}, err
	}
}

// syncStateFacts are the facts of pause_sync, resume_sync and delete_sync:
// the stored sync's destination.
func syncStateFacts(d Deps) FactsFunc {
	return func(ctx context.Context, call *Call, raw json.RawMessage) (map[string]any, error) {
		s, _, err := loadSync(ctx, d, call, raw)
		if err != nil {
			return nil, err
		}
		x, err := d.Store.GetDestination(ctx, s.WorkspaceID, s.DestinationID)
		if err != nil {
			return nil, fmt.Errorf("destination of sync %s: %w", s.ID, err)
		}
		return map[string]any{"destination": x.Name, "destination_environment": x.Environment, "destination_category": x.Category}, nil
	}
}
