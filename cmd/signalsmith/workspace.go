package main

import (
	"context"
	"fmt"

	"github.com/signalsmith/agent-server/store"
)

// workspace runs "signalsmith workspace freeze|unfreeze|status": the kill
// switch that denies every AI write in the workspace at once. The CLI acts
// with the operator's access to the data directory, which is what
// workspace.manage means for a server's own operator; the change is audited
// with source CLI.
func (m *Main) workspace(ctx context.Context, args []string) error {
	if len(args) != 1 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	switch args[0] {
	case "status":
		frozen, err := db.WritesFrozen(ctx, ws.ID)
		if err != nil {
			return err
		}
		state := "allowed"
		if frozen {
			state = "frozen (ai_writes_frozen is on: every AI write is denied)"
		}
		fmt.Fprintf(m.Stdout, "Workspace %s: AI writes %s\n", ws.Name, state)
		return nil
	case "freeze", "unfreeze":
		frozen := args[0] == "freeze"
		ev := operatorEvent(ws, store.SourceCLI, "workspace.manage", "workspace", fmt.Sprintf("ai_writes_frozen set to %v", frozen),
			map[string]any{"command": "workspace " + args[0]})
		ev.ResourceID = ws.ID
		if err := audited(ctx, db, ev, func(ctx context.Context) error { return db.SetWritesFrozen(ctx, ws.ID, frozen) }); err != nil {
			return err
		}
		if frozen {
			fmt.Fprintf(m.Stdout, "AI writes in workspace %s are frozen: every AI write is denied from the next call on.\n", ws.Name)
		} else {
			fmt.Fprintf(m.Stdout, "AI writes in workspace %s are allowed again.\n", ws.Name)
		}
		return nil
	default:
		fmt.Fprintf(m.Stderr, "unknown workspace command %q\n\n%s", args[0], usage)
		return errUsage
	}
}
