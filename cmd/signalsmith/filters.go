package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/store"
)

// filtersCmd runs "signalsmith filters list [--json] | add FLAGS | remove
// ID": how people with governance.manage set the destination filters sync
// runs apply (activation.FilterGovernance). Agents can never change them.
// Every change, and every refused one, is audited (source CLI) in the
// transaction that makes it; a refused change writes nothing.
func (m *Main) filtersCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	var f store.DestinationFilter
	asJSON := false
	switch args[0] {
	case "list", "add":
		fs := flag.NewFlagSet("filters "+args[0], flag.ContinueOnError)
		fs.SetOutput(m.Stderr)
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		if args[0] == "add" {
			fs.StringVar(&f.Effect, "effect", "", "block, drop, sha256, allow, allow_unconsented or rate_limit")
			fs.IntVar(&f.Priority, "priority", 100, "lower applies first")
			fs.StringVar(&f.Category, "category", "", "destination category to match")
			fs.StringVar(&f.Environment, "environment", "", "destination environment to match")
			fs.StringVar(&f.DestinationID, "destination", "", "destination id to match")
			fs.StringVar(&f.Model, "model", "", "model id or name to match")
			fs.StringVar(&f.Column, "column", "", "model column to match")
			fs.StringVar(&f.PIILevel, "pii-level", "", "PII level to match")
			fs.Int64Var(&f.Limit, "limit", 0, "records per --per (rate_limit)")
			fs.StringVar(&f.Per, "per", "", "run or hour (rate_limit)")
			fs.StringVar(&f.Reason, "reason", "", "why: what a refused run says")
		}
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
			fmt.Fprint(m.Stderr, usage)
			return errUsage
		}
	case "remove":
		if len(args) != 2 {
			fmt.Fprint(m.Stderr, usage)
			return errUsage
		}
	default:
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	if args[0] == "list" {
		list, err := db.ListDestinationFilters(ctx, ws.ID)
		if err != nil {
			return err
		}
		if asJSON {
			if list == nil {
				list = []store.DestinationFilter{}
			}
			return json.NewEncoder(m.Stdout).Encode(map[string]any{"filters": list})
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPRIORITY\tEFFECT\tDESTINATION\tCOLUMN\tREASON")
		for _, f := range list {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", f.ID, f.Priority, filterEffect(f), filterDestination(f), filterColumn(f), f.Reason)
		}
		return tw.Flush()
	}
	if args[0] == "remove" {
		ev := operatorEvent(ws, store.SourceCLI, "governance.manage", "destination_filter", "removed destination filter "+args[1],
			map[string]any{"command": "filters remove", "id": args[1]})
		ev.ResourceID = args[1]
		if err := audited(ctx, db, ev, func(ctx context.Context) error { return db.DeleteDestinationFilter(ctx, ws.ID, args[1]) }); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "Removed destination filter %s. Sync runs apply the change from their next start.\n", args[1])
		return nil
	}
	f.WorkspaceID, f.CreatedBy = ws.ID, actorCLI
	ev := operatorEvent(ws, store.SourceCLI, "governance.manage", "destination_filter", "added a "+f.Effect+" destination filter",
		map[string]any{"command": "filters add", "filter": filterArgs(f)})
	var out store.DestinationFilter
	err = audited(ctx, db, ev, func(ctx context.Context) error {
		checked, err := destinations.CheckFilter(ctx, db, f)
		if err != nil {
			return err
		}
		out, err = db.CreateDestinationFilter(ctx, checked)
		return err
	})
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(m.Stdout).Encode(out)
	}
	fmt.Fprintf(m.Stdout, "Added destination filter %s (%s). Sync runs apply it from their next start.\n", out.ID, filterEffect(out))
	return nil
}

// filterEffect is a filter's effect as the list shows it.
func filterEffect(f store.DestinationFilter) string {
	if f.Effect == store.FilterRateLimit {
		return fmt.Sprintf("rate_limit %d/%s", f.Limit, f.Per)
	}
	return f.Effect
}

// filterDestination is what a filter matches of a destination.
func filterDestination(f store.DestinationFilter) string {
	s := orAny(f.Category) + "/" + orAny(f.Environment)
	if f.DestinationID != "" {
		s += " " + f.DestinationID
	}
	return s
}

// filterColumn is what a filter matches of a column.
func filterColumn(f store.DestinationFilter) string {
	if !f.MatchesColumn() {
		return "-"
	}
	s := orAny(f.Model) + "." + orAny(f.Column)
	if f.PIILevel != "" {
		s += " (" + f.PIILevel + ")"
	}
	return s
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// filterArgs is a filter as audit arguments.
func filterArgs(f store.DestinationFilter) map[string]any {
	return map[string]any{"effect": f.Effect, "priority": f.Priority, "category": f.Category, "environment": f.Environment,
		"destination": f.DestinationID, "model": f.Model, "column": f.Column, "pii_level": f.PIILevel, "limit": f.Limit,
		"per": f.Per, "reason": f.Reason}
}
