package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// errChainBroken is returned by "audit verify" when a chain does not verify.
var errChainBroken = errors.New("the audit trail does not verify")

// audit runs "signalsmith audit tail|verify|status|export".
func (m *Main) audit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "tail":
		return m.auditTail(ctx, args[1:])
	case "verify":
		return m.auditVerify(ctx, args[1:])
	case "status":
		return m.auditStatus(ctx, args[1:])
	case "export":
		return m.auditExport(ctx, args[1:])
	default:
		fmt.Fprintf(m.Stderr, "unknown audit command %q\n\n%s", args[0], usage)
		return errUsage
	}
}

// auditTail prints the newest events of every workspace, oldest first.
func (m *Main) auditTail(ctx context.Context, args []string) error {
	fs := m.newFlags("audit tail")
	n := fs.Int("n", 20, "how many events (at most 1000)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
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

// verifyReport is what "audit verify --json" prints.
type verifyReport struct {
	Store        store.ChainReport `json:"store"`
	Warehouse    store.ChainReport `json:"warehouse"`
	AIOperations store.ChainReport `json:"ai_operations"`
	OK           bool              `json:"ok"`
}

// auditVerify checks the hash chain in the store and in the warehouse copy
// (cdp_audit.audit_events, and cdp_audit.ai_operations against it) and
// names the first broken link.
func (m *Main) auditVerify(ctx context.Context, args []string) error {
	fs := m.newFlags("audit verify")
	asJSON := fs.Bool("json", false, "print the reports as JSON")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	db, _, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	sink, err := sqlite.OpenAuditSink(m.warehouseDir())
	if err != nil {
		return err
	}
	m.closers = append(m.closers, sink)
	var r verifyReport
	if r.Store, err = db.VerifyAudit(ctx); err != nil {
		return fmt.Errorf("verify the store's audit chain: %w", err)
	}
	read := func(table string) store.ReadAuditFunc {
		return func(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
			return sink.ReadAuditEvents(ctx, table, f)
		}
	}
	if r.Warehouse, err = store.VerifyCopy(ctx, db.Audit, read(store.AuditTableEvents), false); err != nil {
		return fmt.Errorf("verify the warehouse copy %s: %w", sink.Path(), err)
	}
	aiOnly := func(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
		f.Source = store.SourceAI
		return db.Audit(ctx, f)
	}
	if r.AIOperations, err = store.VerifyCopy(ctx, aiOnly, read(store.AuditTableAI), true); err != nil {
		return fmt.Errorf("verify the warehouse copy %s: %w", sink.Path(), err)
	}
	r.OK = r.Store.Break == nil && r.Warehouse.Break == nil && r.AIOperations.Break == nil
	if *asJSON {
		if err := json.NewEncoder(m.Stdout).Encode(r); err != nil {
			return err
		}
	} else {
		m.printChain("store signalsmith.db audit_events", r.Store, false)
		m.printChain("warehouse cdp_audit.audit_events", r.Warehouse, true)
		m.printChain("warehouse cdp_audit.ai_operations", r.AIOperations, false)
	}
	if !r.OK {
		return errChainBroken
	}
	return nil
}

// printChain prints one chain's verification.
func (m *Main) printChain(name string, r store.ChainReport, copyOf bool) {
	if r.Break != nil {
		fmt.Fprintf(m.Stdout, "%s: BROKEN at event %s (seq %d): %s: %s\n", name, r.Break.EventID, r.Break.Seq, r.Break.Kind, r.Break.Detail)
		fmt.Fprintf(m.Stdout, "  %d events verified before it\n", r.Events)
		return
	}
	fmt.Fprintf(m.Stdout, "%s: OK, %d events", name, r.Events)
	if r.Events > 0 {
		fmt.Fprintf(m.Stdout, ", head seq %d hash %s", r.HeadSeq, r.HeadHash)
	}
	if copyOf {
		fmt.Fprintf(m.Stdout, ", matching the store; %d not shipped yet", r.Behind)
	}
	fmt.Fprintln(m.Stdout)
}

// auditStatus shows the shipping backlog and the last shipped event.
func (m *Main) auditStatus(ctx context.Context, args []string) error {
	fs := m.newFlags("audit status")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	db, _, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	s, err := db.AuditShipping(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(m.Stdout).Encode(s)
	}
	w := m.Stdout
	fmt.Fprintf(w, "Backlog: %d events not yet shipped to the warehouse (cdp_audit)\n", s.Backlog)
	if s.LastSeq == 0 {
		fmt.Fprintln(w, "Last shipped: none yet")
	} else {
		fmt.Fprintf(w, "Last shipped: event %s (seq %d", s.LastID, s.LastSeq)
		if s.LastAt != nil {
			fmt.Fprintf(w, ", at %s", s.LastAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprint(w, ")")
		if s.ShippedAt != nil {
			fmt.Fprintf(w, ", shipped %s", s.ShippedAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Shipped in total: %d\n", s.Shipped)
	if s.Failures > 0 {
		at := ""
		if s.LastErrorAt != nil {
			at = s.LastErrorAt.UTC().Format(time.RFC3339) + ": "
		}
		fmt.Fprintf(w, "Failing: %d attempts since the last success; last %s%s\n", s.Failures, at, s.LastError)
	}
	return nil
}

// exportColumns are the CSV columns of "audit export --format csv".
var exportColumns = []string{"seq", "id", "at", "workspace", "actor_type", "actor_id", "actor_name", "key_prefix", "source",
	"action", "tool", "resource_type", "resource_id", "decision", "rules", "reason", "approval_id", "args", "result",
	"latency_ms", "client", "session_id", "request_id", "prev_hash", "hash"}

// auditExport writes every chained event (or those since a time) in chain
// order as JSONL or CSV.
func (m *Main) auditExport(ctx context.Context, args []string) error {
	fs := m.newFlags("audit export")
	format := fs.String("format", "jsonl", "jsonl or csv")
	sinceText := fs.String("since", "", "only events at or after this RFC 3339 time")
	untilText := fs.String("until", "", "only events before this RFC 3339 time")
	output := fs.String("output", "", "write to this file (mode 0600) instead of stdout")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	if *format != "jsonl" && *format != "csv" {
		fmt.Fprintln(m.Stderr, "--format must be jsonl or csv")
		return errUsage
	}
	var f store.AuditFilter
	for _, t := range []struct {
		name, text string
		dst        *time.Time
	}{{"--since", *sinceText, &f.Since}, {"--until", *untilText, &f.Until}} {
		if t.text == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.text)
		if err != nil {
			fmt.Fprintf(m.Stderr, "%s %q is not an RFC 3339 time such as 2026-01-31T00:00:00Z\n", t.name, t.text)
			return errUsage
		}
		*t.dst = v
	}
	db, _, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	w := m.Stdout
	var file *os.File
	if *output != "" {
		if file, err = os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	n, err := exportAudit(ctx, db, f, *format, w)
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
		fmt.Fprintf(m.Stderr, "Exported %d audit events to %s\n", n, *output)
	}
	return nil
}

// exportAudit writes the events f selects, page by page in chain order,
// and returns how many it wrote. Events are written exactly as recorded
// (already redacted), so each line's hash can be checked again.
func exportAudit(ctx context.Context, db *sqlite.DB, f store.AuditFilter, format string, w io.Writer) (int, error) {
	var enc *json.Encoder
	var cw *csv.Writer
	if format == "csv" {
		cw = csv.NewWriter(w)
		if err := cw.Write(exportColumns); err != nil {
			return 0, err
		}
	} else {
		enc = json.NewEncoder(w)
	}
	f.Oldest, f.Limit = true, 1000
	n := 0
	for {
		page, err := db.Audit(ctx, f)
		if err != nil {
			return n, err
		}
		for _, e := range page {
			if enc != nil {
				err = enc.Encode(e)
			} else {
				err = cw.Write(csvRecord(e))
			}
			if err != nil {
				return n, err
			}
			n++
		}
		if len(page) < f.Limit {
			break
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
	if cw != nil {
		cw.Flush()
		return n, cw.Error()
	}
	return n, nil
}

// csvRecord is one event as a CSV row. rules and args are their JSON text.
// A text that a spreadsheet would run as a formula (starting with =, +, -,
// @, tab or carriage return) is prefixed with a single quote.
func csvRecord(e store.AuditEvent) []string {
	var rules, args string
	if len(e.Rules) > 0 {
		b, _ := store.CanonicalJSON(e.Rules)
		rules = string(b)
	}
	if e.Args != nil {
		b, _ := store.CanonicalJSON(e.Args)
		args = string(b)
	}
	rec := []string{strconv.FormatInt(e.Seq, 10), e.ID, e.At.UTC().Format(time.RFC3339Nano), e.WorkspaceID, e.ActorType,
		e.ActorID, e.ActorName, e.KeyPrefix, e.Source, e.Action, e.Tool, e.ResourceType, e.ResourceID, e.Decision, rules,
		e.Reason, e.ApprovalID, args, e.Result, strconv.FormatFloat(e.LatencyMS, 'f', -1, 64), e.Client, e.SessionID,
		e.RequestID, e.PrevHash, e.Hash}
	for i, v := range rec {
		if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			rec[i] = "'" + v
		}
	}
	return rec
}

// Actors of operations the command line and the server itself perform.
const (
	actorCLI    = "cli"
	actorSystem = "system"
)

// operatorEvent starts the audit event of an operation by the command line
// (source CLI, actor cli) or by the server itself (source SYSTEM, actor
// system). args are redacted.
func operatorEvent(ws store.Workspace, source, action, resourceType, result string, args map[string]any) store.AuditEvent {
	actor := actorCLI
	if source == store.SourceSystem {
		actor = actorSystem
	}
	return store.AuditEvent{
		At: time.Now().UTC(), WorkspaceID: ws.ID, ActorType: actor, ActorID: actor, Source: source, Action: action,
		ResourceType: resourceType, Result: result, Args: guardrails.Redact(args),
	}
}

// audited runs change with ev as its pending audit event (store.Audited),
// a failure's reason redacted.
func audited(ctx context.Context, s store.AuditAppender, ev store.AuditEvent, change func(context.Context) error) error {
	return store.Audited(ctx, s, ev, func(err error) string { return guardrails.RedactString(err.Error()) }, change)
}
