package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/signalsmith/agent-server/guardrails"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// errUsage means the command line was wrong; the usage was printed.
var errUsage = errors.New("usage")

// defaultWorkspace is the workspace the CLI and the demo use.
const defaultWorkspace = "default"

const usage = `Usage: signalsmith [--data-dir DIR] COMMAND [ARGS]

Commands:
  serve [--demo] [--http ADDR] [--stdio] [--scale N]   run the MCP server
  keys create --name N --role R [--kind user --email E | --kind agent --owner NAME] [--expires 720h] [--json]
  keys list [--json] | keys revoke ID | keys rotate ID [--json]
  keys rotate-master                                   re-encrypt every destination credential under a new master key
  destinations create --name N --type webhook|file --category C --environment production|sandbox
      [--url U --secret S|- (else stdin) | --dir D --format jsonl|csv] [--batch-size N] [--timeout 10s] [--json]
  destinations list [--json] | show ID [--json] | update ID [flags of create] | delete ID | test ID
  audit tail [-n 20] [--json]                          show the latest audit events
  audit verify [--json]                                check the hash chain in the store and the warehouse copy
  audit status [--json]                                the shipping backlog and the last shipped event
  audit export [--format jsonl|csv] [--since T] [--until T] [--output FILE]
  workspace freeze|unfreeze|status                     the kill switch for AI writes
  approvals list [--state S] [--json] | show ID [--json]
  approvals approve|reject ID [--comment C] [--policy FILE]   decide as SIGNALSMITH_API_KEY's person
  policies show | apply FILE | reset                   the AI policies servers use (without --policy)
  pii list [--json] | set COLUMN LEVEL [COLUMN LEVEL ...] | import FILE
                                                       classify warehouse columns (schema.table.column)
  filters list [--json] | remove ID                    destination filters: what may flow to which destination
  filters add --effect block|drop|sha256|allow|allow_unconsented|rate_limit --reason R [--priority N]
      [--category C] [--environment E] [--destination ID] [--model M] [--column C] [--pii-level L]
      [--limit N --per run|hour] [--json]
  eval bench [--sessions 1,8,32] [--duration 3s] [--round 250ms] [--scale N] [--json]
                                                       the gate against a bare MCP server, on a throw-away
                                                       demo unless --data-dir is given

--data-dir defaults to $SIGNALSMITH_DATA_DIR, else ./signalsmith-data.
`

// Run parses global flags and runs one command.
func (m *Main) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("signalsmith", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { fmt.Fprint(m.Stderr, usage) }
	def := m.Getenv("SIGNALSMITH_DATA_DIR")
	if def == "" {
		def = "signalsmith-data"
	}
	fs.StringVar(&m.DataDir, "data-dir", def, "data directory")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errUsage
	}
	switch rest[0] {
	case "serve":
		return m.serve(ctx, rest[1:])
	case "keys":
		return m.keys(ctx, rest[1:])
	case "audit":
		return m.audit(ctx, rest[1:])
	case "workspace":
		return m.workspace(ctx, rest[1:])
	case "approvals":
		return m.approvalsCmd(ctx, rest[1:])
	case "policies":
		return m.policiesCmd(ctx, rest[1:])
	case "pii":
		return m.piiCmd(ctx, rest[1:])
	case "destinations":
		return m.destinationsCmd(ctx, rest[1:])
	case "filters", "destination-filters":
		return m.filtersCmd(ctx, rest[1:])
	case "eval":
		return m.eval(ctx, rest[1:])
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	default:
		fmt.Fprintf(m.Stderr, "unknown command %q\n\n", rest[0])
		fs.Usage()
		return errUsage
	}
}

// openStore opens the metadata store and the default workspace with the
// current built-in roles.
func (m *Main) openStore(ctx context.Context) (*sqlite.DB, store.Workspace, error) {
	db, err := sqlite.Open(ctx, m.DataDir)
	if err != nil {
		return nil, store.Workspace{}, err
	}
	m.closers = append(m.closers, db)
	ws, err := db.EnsureWorkspace(ctx, defaultWorkspace, guardrails.BuiltInRoles())
	if err != nil {
		return nil, store.Workspace{}, err
	}
	return db, ws, nil
}

// warehouseDir is where the embedded warehouse files live.
func (m *Main) warehouseDir() string { return filepath.Join(m.DataDir, "warehouse") }

// logger writes operational logs to stderr. Secrets are never logged.
func (m *Main) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newFlags returns a flag set for a subcommand that reports to stderr.
func (m *Main) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

// parseFlags parses args, allowing flags after positional arguments too
// ("keys revoke ID --json"), and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
