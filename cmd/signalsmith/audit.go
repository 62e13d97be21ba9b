package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// audit runs "signalsmith audit tail".
func (m *Main) audit(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "tail" {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	fs := m.newFlags("audit tail")
	n := fs.Int("n", 20, "how many events (at most 1000)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	if pos, err := parseFlags(fs, args[1:]); err != nil || len(pos) > 0 {
		return errUsage
	}
	if *n < 1 || *n > 1000 {
		fmt.Fprintln(m.Stderr, "-n must be between 1 and 1000")
		return errUsage
	}
	db, _, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	// Every workspace's events, and refused requests, which have none.
	events, err := db.Audit(ctx, store.AuditFilter{Limit: *n})
	if err != nil {
		return err
	}
	// Oldest first, like a log tail.
	for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
		events[i], events[j] = events[j], events[i]
	}
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		for _, e := range events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tSOURCE\tACTOR\tKEY\tTOOL\tRESOURCE\tDECISION\tREASON")
	for _, e := range events {
		actor := e.ActorName
		if actor == "" {
			actor = e.ActorType
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.DateTime), e.Source, actor, e.KeyPrefix,
			e.Tool, e.ResourceID, e.Decision, e.Reason)
	}
	return tw.Flush()
}
