package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// piiCmd runs "signalsmith pii list [--json] | set COLUMN LEVEL [COLUMN
// LEVEL ...] | import FILE": how people with governance.manage classify
// the warehouse's source columns. Model columns take their levels from
// this classification (store.ApplyPII); agents can never change it. Every
// change is audited (source CLI) in the transaction that makes it, and a
// running server applies it on the next call.
func (m *Main) piiCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	var set []store.PIIClass
	audit := map[string]any{"command": "pii " + args[0]}
	switch {
	case args[0] == "list" && (len(args) == 1 || len(args) == 2 && args[1] == "--json"):
	case args[0] == "set" && len(args) >= 3 && len(args)%2 == 1:
		columns := map[string]any{}
		for i := 1; i < len(args); i += 2 {
			set = append(set, store.PIIClass{Column: args[i], Level: args[i+1]})
			columns[args[i]] = args[i+1]
		}
		audit["columns"] = columns
	case args[0] == "import" && len(args) == 2:
		audit["file"] = args[1]
	default:
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	wh, err := sqlite.OpenWarehouse(ctx, m.warehouseDir(), sqlite.WarehouseOptions{})
	if err != nil {
		return fmt.Errorf("open warehouse (run serve --demo to create the demo warehouse): %w", err)
	}
	defer wh.Close()
	if args[0] == "list" {
		return m.listPII(ctx, db, ws, wh, len(args) == 2)
	}
	// Refusals are audited too: the checks run inside the audited change.
	var parseErr error
	if args[0] == "import" {
		var data []byte
		if data, parseErr = os.ReadFile(args[1]); parseErr == nil {
			set, parseErr = guardrails.ParsePIIFile(args[1], data)
		}
		columns := map[string]any{}
		for _, c := range set {
			columns[c.Column] = c.Level
		}
		audit["columns"] = columns
	}
	var checked []store.PIIClass
	ev := operatorEvent(ws, store.SourceCLI, "governance.manage", "pii", fmt.Sprintf("classified %d columns", len(set)), audit)
	ev.ResourceID = ws.ID
	err = audited(ctx, db, ev, func(ctx context.Context) error {
		if parseErr != nil {
			return parseErr
		}
		var err error
		if checked, err = guardrails.CheckPIIClasses(ctx, wh, set); err != nil {
			return err
		}
		for i := range checked {
			checked[i].UpdatedBy = actorCLI
		}
		return db.SetPIIClasses(ctx, ws.ID, checked)
	})
	if err != nil {
		return err
	}
	for _, c := range checked {
		fmt.Fprintf(m.Stdout, "%s: %s\n", c.Column, c.Level)
	}
	fmt.Fprintf(m.Stdout, "Classified %d columns. Models that read them take the new levels on the next call.\n", len(checked))
	return nil
}

// listPII prints every warehouse column with its level.
func (m *Main) listPII(ctx context.Context, db *sqlite.DB, ws store.Workspace, wh store.Warehouse, asJSON bool) error {
	classes, err := db.PIIClasses(ctx, ws.ID)
	if err != nil {
		return err
	}
	all, err := guardrails.PIIColumns(ctx, wh, classes)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(m.Stdout).Encode(map[string]any{"columns": all})
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COLUMN\tLEVEL\tCLASSIFIED")
	for _, c := range all {
		by := "no (unclassified columns are blocked)"
		if c.Classified {
			by = strings.TrimSpace(c.UpdatedAt.Format("2006-01-02 15:04") + " by " + c.UpdatedBy)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Column, c.Level, by)
	}
	return tw.Flush()
}
