package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// policiesCmd runs "signalsmith policies show|apply FILE|reset". The CLI
// works with the operator's access to the data directory (like keys): it
// is how governance.manage holders change the AI policies, which agents can
// never do. A running server decides its next call with the new set.
func (m *Main) policiesCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] == "apply") != (len(args) == 2) || len(args) > 2 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	switch args[0] {
	case "show":
		set, source, err := activePolicies(ctx, db, ws)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "# policy set %s (%s)\n", set.Version, source)
		if ps, err := db.ActivePolicySet(ctx, ws.ID); err == nil {
			fmt.Fprint(m.Stdout, ps.Source)
		} else {
			fmt.Fprint(m.Stdout, string(guardrails.DefaultPolicySource()))
		}
		return nil
	case "apply":
		data, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		set, err := guardrails.ParsePolicies(args[1], data)
		if err != nil {
			return err
		}
		ps := store.PolicySet{Version: set.Version, Source: string(data), AppliedBy: "operator"}
		if err := auditPolicyChange(ctx, db, ws, "applied policy set "+set.Version+" from "+args[1], ps); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "Applied policy set %s (%d policies). Running servers use it from their next call.\n", set.Version, len(set.Policies))
		return nil
	case "reset":
		if err := auditPolicyChange(ctx, db, ws, "reset to the shipped default policies", store.PolicySet{AppliedBy: "operator"}); err != nil {
			return err
		}
		fmt.Fprintln(m.Stdout, "The shipped default policies apply again.")
		return nil
	default:
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
}

// auditPolicyChange applies a policy set from the command line, audited in
// the same transaction.
func auditPolicyChange(ctx context.Context, db *sqlite.DB, ws store.Workspace, what string, ps store.PolicySet) error {
	ev := operatorEvent(ws, store.SourceCLI, "governance.manage", "policy", what,
		map[string]any{"command": "policies", "version": ps.Version})
	ev.ResourceID = ws.ID
	return audited(ctx, db, ev, func(ctx context.Context) error { return db.ApplyPolicySet(ctx, ws.ID, ps) })
}

// policiesFor returns the policy set a server uses: the --policy file when
// given, else the stored set or the shipped defaults.
func policiesFor(ctx context.Context, db *sqlite.DB, ws store.Workspace, path string) (*guardrails.PolicySet, error) {
	if path != "" {
		return loadPolicies(path)
	}
	set, _, err := activePolicies(ctx, db, ws)
	return set, err
}

// activePolicies returns the workspace's policy set: the stored one when a
// person applied one, else the shipped defaults; and which it is.
func activePolicies(ctx context.Context, db *sqlite.DB, ws store.Workspace) (*guardrails.PolicySet, string, error) {
	ps, err := db.ActivePolicySet(ctx, ws.ID)
	if errors.Is(err, store.ErrNotFound) {
		set, err := guardrails.DefaultPolicies()
		return set, "shipped defaults", err
	}
	if err != nil {
		return nil, "", err
	}
	set, err := guardrails.ParsePolicies("stored policy set "+ps.Version, []byte(ps.Source))
	return set, "applied by " + ps.AppliedBy + " at " + ps.AppliedAt.UTC().Format(time.DateTime), err
}
