package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// destinationsCmd runs "signalsmith destinations
// create|list|show|update|delete|test": how people set up where audiences
// go and the credentials to get there (DESIGN.md section 11). Agents only
// read destinations. Every change is audited (source CLI) in the
// transaction that makes it; a secret is sealed under the master key
// before it reaches the store, and never printed, logged or audited.
func (m *Main) destinationsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "create":
		return m.destinationsCreate(ctx, args[1:])
	case "list":
		return m.destinationsList(ctx, args[1:])
	case "show":
		return m.destinationsShow(ctx, args[1:])
	case "update":
		return m.destinationsUpdate(ctx, args[1:])
	case "delete":
		return m.destinationsDelete(ctx, args[1:])
	case "test":
		return m.destinationsTest(ctx, args[1:])
	default:
		fmt.Fprintf(m.Stderr, "unknown destinations command %q\n\n%s", args[0], usage)
		return errUsage
	}
}

// specFlags are the settings flags create and update share.
type specFlags struct {
	name, typ, category, environment, url, secret, dir, format *string
	batch                                                      *int
	timeout                                                    *time.Duration
}

func addSpecFlags(fs *flag.FlagSet) specFlags {
	return specFlags{
		name:        fs.String("name", "", "the destination's name, unique in the workspace"),
		typ:         fs.String("type", "", "webhook or file"),
		category:    fs.String("category", "", "advertising, crm, marketing, analytics or other"),
		environment: fs.String("environment", "", "production or sandbox"),
		url:         fs.String("url", "", "webhook: the https URL batches are POSTed to"),
		secret:      fs.String("secret", "", "webhook: the signing secret (\"-\" or absent on create: read it from stdin)"),
		dir:         fs.String("dir", "", "file: an existing folder (relative: inside the data directory)"),
		format:      fs.String("format", "", "file: jsonl (default) or csv"),
		batch:       fs.Int("batch-size", 0, fmt.Sprintf("records per batch (default %d)", destinations.DefaultBatchSize)),
		timeout:     fs.Duration("timeout", 0, fmt.Sprintf("webhook: timeout of one request (default %v)", destinations.DefaultTimeout)),
	}
}

// apply copies the flags given on the command line into s.
func (f specFlags) apply(fs *flag.FlagSet, s *destinations.Spec) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "name":
			s.Name = *f.name
		case "type":
			s.Type = *f.typ
		case "category":
			s.Category = *f.category
		case "environment":
			s.Environment = *f.environment
		case "url":
			s.URL = *f.url
		case "dir":
			s.Dir = *f.dir
		case "format":
			s.Format = *f.format
		case "batch-size":
			s.BatchSize = *f.batch
		case "timeout":
			s.Timeout = *f.timeout
		}
	})
}

// readSecret reads a secret from stdin: its first line, at most 4 KiB.
func (m *Main) readSecret() ([]byte, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(m.Stdin, 4097), 4097).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read the secret from stdin: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

// destinationArgs is what an audit record says of a destination change:
// its settings, and whether a secret was given, never the secret.
func destinationArgs(command string, s destinations.Spec, secretGiven bool) map[string]any {
	args := map[string]any{"command": command, "name": s.Name, "type": s.Type, "category": s.Category,
		"environment": s.Environment}
	for k, v := range map[string]string{"url": s.URL, "dir": s.Dir, "format": s.Format} {
		if v != "" {
			args[k] = v
		}
	}
	if secretGiven {
		args["secret"] = "[set]"
	}
	return args
}

// manager applies destination changes to db, creating the key file when
// a secret is sealed and there is no master key yet.
func (m *Main) manager(db *sqlite.DB) *destinations.Manager {
	return &destinations.Manager{Store: db, DataDir: m.DataDir, KeysFunc: func() (*destinations.Keyring, error) { return m.keyring(true) }}
}

// keyring loads the master key, creating the key file when there is none
// (with create).
func (m *Main) keyring(create bool) (*destinations.Keyring, error) {
	return destinations.LoadKeyring(m.Getenv, m.DataDir, create)
}

func (m *Main) destinationsCreate(ctx context.Context, args []string) error {
	fs := m.newFlags("destinations create")
	f := addSpecFlags(fs)
	asJSON := fs.Bool("json", false, "print the created destination as JSON")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	var spec destinations.Spec
	f.apply(fs, &spec)
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	var secret []byte
	if spec.Type == store.DestinationWebhook {
		if *f.secret == "" || *f.secret == "-" {
			if secret, err = m.readSecret(); err != nil {
				return err
			}
		} else {
			secret = []byte(*f.secret)
		}
	} else if *f.secret != "" {
		secret = []byte(*f.secret)
	}
	defer clear(secret)
	var out store.Destination
	ev := operatorEvent(ws, store.SourceCLI, "destinations.create", "destination", "created destination "+spec.Name,
		destinationArgs("destinations create", spec, len(secret) > 0))
	err = audited(ctx, db, ev, func(ctx context.Context) error {
		var err error
		out, err = m.manager(db).Create(ctx, ws.ID, spec, secret)
		return err
	})
	if err != nil {
		return destinationError(spec.Name, err)
	}
	if *asJSON {
		return json.NewEncoder(m.Stdout).Encode(out)
	}
	fmt.Fprintf(m.Stdout, "Created %s destination %s (%s), %s, %s.\n", out.Type, out.Name, out.ID, out.Category, out.Environment)
	return nil
}

// findDestination returns a workspace's destination by id or name.
func findDestination(ctx context.Context, db *sqlite.DB, workspaceID, ref string) (store.Destination, error) {
	if d, err := db.GetDestination(ctx, workspaceID, ref); !errors.Is(err, store.ErrNotFound) {
		return d, err
	}
	all, err := db.ListDestinations(ctx, workspaceID)
	if err != nil {
		return store.Destination{}, err
	}
	for _, d := range all {
		if d.Name == ref {
			return d, nil
		}
	}
	return store.Destination{}, fmt.Errorf("destination %q: %w", ref, store.ErrNotFound)
}

// destinationError explains a refused destination command.
func destinationError(ref string, err error) error {
	var inUse *store.InUseError
	switch {
	case errors.As(err, &inUse):
		return fmt.Errorf("%v: delete or change those syncs first", inUse)
	case errors.Is(err, store.ErrNotFound) && !errors.Is(err, destinations.ErrNoMasterKey):
		return fmt.Errorf("no destination %q in this workspace (see signalsmith destinations list)", ref)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("a destination named %q exists already: choose another --name", ref)
	}
	return err
}

func (m *Main) destinationsList(ctx context.Context, args []string) error {
	fs := m.newFlags("destinations list")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	all, err := db.ListDestinations(ctx, ws.ID)
	if err != nil {
		return err
	}
	if *asJSON {
		if all == nil {
			all = []store.Destination{}
		}
		return json.NewEncoder(m.Stdout).Encode(all)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tCATEGORY\tENVIRONMENT\tSECRET")
	for _, d := range all {
		secret := "none"
		if d.HasCredentials {
			secret = "set (sealed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Name, d.Type, d.Category, d.Environment, secret)
	}
	return tw.Flush()
}

func (m *Main) destinationsShow(ctx context.Context, args []string) error {
	fs := m.newFlags("destinations show")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(m.Stderr, "usage: signalsmith destinations show ID|NAME [--json]")
		return errUsage
	}
	_, _, d, err := m.openDestination(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(m.Stdout).Encode(d)
	}
	s := destinations.SpecOf(d)
	fmt.Fprintf(m.Stdout, "%s (%s)\n  type: %s\n  category: %s\n  environment: %s\n  batch size: %d\n", d.Name, d.ID, d.Type,
		d.Category, d.Environment, s.BatchSize)
	switch d.Type {
	case store.DestinationWebhook:
		secret := "none: set one with destinations update --secret"
		if d.HasCredentials {
			secret = "set (sealed under the master key)"
		}
		fmt.Fprintf(m.Stdout, "  url: %s\n  timeout: %v\n  secret: %s\n", s.URL, s.Timeout, secret)
	case store.DestinationFile:
		fmt.Fprintf(m.Stdout, "  dir: %s\n  format: %s\n", s.Dir, s.Format)
	}
	return nil
}

func (m *Main) destinationsUpdate(ctx context.Context, args []string) error {
	fs := m.newFlags("destinations update")
	f := addSpecFlags(fs)
	asJSON := fs.Bool("json", false, "print the updated destination as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(m.Stderr, "usage: signalsmith destinations update ID|NAME [--name N] [--category C] [--environment E] [--url U] [--secret S|-] [--dir D] [--format F] [--batch-size N] [--timeout T]")
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	cur, err := findDestination(ctx, db, ws.ID, pos[0])
	if err != nil {
		return destinationError(pos[0], err)
	}
	spec := destinations.SpecOf(cur)
	f.apply(fs, &spec)
	var secret []byte // nil keeps the sealed secret
	switch {
	case *f.secret == "-":
		if secret, err = m.readSecret(); err != nil {
			return err
		}
	case *f.secret != "":
		secret = []byte(*f.secret)
	}
	defer clear(secret)
	var out store.Destination
	ev := operatorEvent(ws, store.SourceCLI, "destinations.update", "destination", "updated destination "+cur.Name,
		destinationArgs("destinations update", spec, len(secret) > 0))
	ev.ResourceID = cur.ID
	err = audited(ctx, db, ev, func(ctx context.Context) error {
		var err error
		out, err = m.manager(db).Update(ctx, cur, spec, secret)
		return err
	})
	if err != nil {
		return destinationError(spec.Name, err)
	}
	if *asJSON {
		return json.NewEncoder(m.Stdout).Encode(out)
	}
	fmt.Fprintf(m.Stdout, "Updated destination %s (%s).\n", out.Name, out.ID)
	return nil
}

// openDestination opens the store and finds the destination ref names
// (an id or a name) in the default workspace.
func (m *Main) openDestination(ctx context.Context, ref string) (*sqlite.DB, store.Workspace, store.Destination, error) {
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return nil, store.Workspace{}, store.Destination{}, err
	}
	d, err := findDestination(ctx, db, ws.ID, ref)
	if err != nil {
		return nil, store.Workspace{}, store.Destination{}, destinationError(ref, err)
	}
	return db, ws, d, nil
}

func (m *Main) destinationsDelete(ctx context.Context, args []string) error {
	fs := m.newFlags("destinations delete")
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(m.Stderr, "usage: signalsmith destinations delete ID|NAME")
		return errUsage
	}
	db, ws, cur, err := m.openDestination(ctx, pos[0])
	if err != nil {
		return err
	}
	ev := operatorEvent(ws, store.SourceCLI, "destinations.delete", "destination", "deleted destination "+cur.Name,
		map[string]any{"command": "destinations delete", "destination": cur.ID})
	ev.ResourceID = cur.ID
	if err := audited(ctx, db, ev, func(ctx context.Context) error { return db.DeleteDestination(ctx, ws.ID, cur.ID) }); err != nil {
		return destinationError(pos[0], err)
	}
	fmt.Fprintf(m.Stdout, "Deleted destination %s (%s); its sealed secret is gone with it.\n", cur.Name, cur.ID)
	return nil
}

func (m *Main) destinationsTest(ctx context.Context, args []string) error {
	fs := m.newFlags("destinations test")
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(m.Stderr, "usage: signalsmith destinations test ID|NAME")
		return errUsage
	}
	db, ws, cur, err := m.openDestination(ctx, pos[0])
	if err != nil {
		return err
	}
	ev := operatorEvent(ws, store.SourceCLI, "destinations.test", "destination", "tested destination "+cur.Name,
		map[string]any{"command": "destinations test", "destination": cur.ID})
	ev.ResourceID = cur.ID
	err = audited(ctx, db, ev, func(ctx context.Context) error { return testDestination(ctx, m, db, cur) })
	if err != nil {
		return fmt.Errorf("destination %s did not pass: %w", cur.Name, err)
	}
	what := "took an empty signed batch"
	if cur.Type == store.DestinationFile {
		what = "has a writable folder"
	}
	fmt.Fprintf(m.Stdout, "Destination %s (%s) %s.\n", cur.Name, cur.ID, what)
	return nil
}

// testDestination opens a destination's Sender, as a sync run would, and
// tests it without sending a member.
func testDestination(ctx context.Context, m *Main, db *sqlite.DB, d store.Destination) error {
	s, _, err := destinations.NewRegistry(db, destinations.Keys(m.Getenv, m.DataDir), m.DataDir).Sender(ctx, d.WorkspaceID, d.ID)
	if err != nil {
		return err
	}
	defer s.Close()
	return destinations.Test(ctx, s)
}

// rotateMaster runs "signalsmith keys rotate-master": a new master key,
// and every destination credential re-encrypted under it in one audited
// transaction. With the key file the new key is generated and written
// there; with SIGNALSMITH_MASTER_KEY the new key comes from
// SIGNALSMITH_NEW_MASTER_KEY, to be set as SIGNALSMITH_MASTER_KEY after.
func (m *Main) rotateMaster(ctx context.Context, args []string) error {
	fs := m.newFlags("keys rotate-master")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	old, err := m.keyring(true)
	if err != nil {
		return err
	}
	var next []byte
	if old.FromEnv() {
		v := m.Getenv(newMasterKeyEnv)
		if v == "" {
			return fmt.Errorf("the master key comes from %s: give the new one in %s", destinations.KeyEnv, newMasterKeyEnv)
		}
		if next, err = destinations.ParseKey(v); err != nil {
			return fmt.Errorf("%s: %w", newMasterKeyEnv, err)
		}
	} else if next, err = destinations.NewKey(); err != nil {
		return err
	}
	var kr *destinations.Keyring
	var n int
	ev := operatorEvent(ws, store.SourceCLI, "workspace.manage", "master_key",
		"re-encrypted every destination credential under master key "+destinations.KeyID(next),
		map[string]any{"command": "keys rotate-master", "from_key": old.KeyID(), "to_key": destinations.KeyID(next)})
	ev.ResourceID = destinations.KeyID(next)
	err = audited(ctx, db, ev, func(ctx context.Context) error {
		var err error
		kr, n, err = destinations.Rotate(ctx, db, old, next)
		return err
	})
	if err != nil {
		return fmt.Errorf("rotate the master key: %w", err)
	}
	fmt.Fprintf(m.Stdout, "Re-encrypted %d destination credentials under master key %s (was %s).\n", n, kr.KeyID(), old.KeyID())
	if old.FromEnv() {
		fmt.Fprintf(m.Stdout, "Set %s to the new key now; the old key opens nothing any more.\n", destinations.KeyEnv)
	}
	return nil
}

// newMasterKeyEnv holds the next master key for a rotation when the
// current one comes from the environment.
const newMasterKeyEnv = "SIGNALSMITH_NEW_MASTER_KEY"
