package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/signalsmith/agent-server/server"
	"github.com/signalsmith/agent-server/store"
)

// keys runs "signalsmith keys create|list|revoke|rotate|rotate-master".
func (m *Main) keys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "create":
		return m.keysCreate(ctx, args[1:])
	case "list":
		return m.keysList(ctx, args[1:])
	case "revoke":
		return m.keysRevoke(ctx, args[1:])
	case "rotate":
		return m.keysRotate(ctx, args[1:])
	case "rotate-master":
		return m.rotateMaster(ctx, args[1:])
	default:
		fmt.Fprintf(m.Stderr, "unknown keys command %q\n\n%s", args[0], usage)
		return errUsage
	}
}

// createdKey is what "keys create --json" and "keys rotate --json" print.
type createdKey struct {
	ID     string `json:"id"`
	Prefix string `json:"prefix"`
	Key    string `json:"key"`
}

func (m *Main) keysCreate(ctx context.Context, args []string) error {
	fs := m.newFlags("keys create")
	name := fs.String("name", "", "member the key authenticates (created if new)")
	role := fs.String("role", "", "role of a new member: owner, admin, member or a custom role")
	kind := fs.String("kind", store.KindUser, "user (a human) or agent")
	owner := fs.String("owner", "", "for an agent key (required): the user member it acts for")
	email := fs.String("email", "", "for a new user member (required): the person's email, unique in the workspace")
	expires := fs.Duration("expires", 0, "lifetime of the key, e.g. 720h (default: no expiry)")
	asJSON := fs.Bool("json", false, `print {"id","prefix","key"} as JSON`)
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	if *name == "" || *role == "" {
		fmt.Fprintln(m.Stderr, "keys create needs --name and --role")
		return errUsage
	}
	if *kind == store.KindAgent && *owner == "" {
		fmt.Fprintln(m.Stderr, "an agent key needs --owner NAME: the user member it acts for (an agent never exceeds its human)")
		return errUsage
	}
	if *expires < 0 {
		fmt.Fprintln(m.Stderr, "--expires must be positive")
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	k, key, err := createKey(ctx, db, ws, store.SourceCLI, store.NewKey{
		WorkspaceID: ws.ID, MemberName: *name, Kind: *kind, Role: *role, OwnerName: *owner, Email: *email, Name: *name,
	}, *expires)
	if err != nil {
		return err
	}
	return m.printKey(k, key, *asJSON)
}

// keyCreator is what createKey needs of the store: a key created with its
// audit event (store.Keys, store.AuditAppender).
type keyCreator interface {
	store.AuditAppender
	CreateKey(ctx context.Context, k store.NewKey) (store.Key, error)
}

// createKey generates a key, stores its hash and returns the record and the
// full key, which exists nowhere else. The creation is audited in the same
// transaction, with source (CLI, or SYSTEM for the demo keys serve creates)
// and the key's masked prefix, never its secret.
func createKey(ctx context.Context, s keyCreator, ws store.Workspace, source string, nk store.NewKey, lifetime time.Duration) (store.Key, string, error) {
	key, prefix, hash, err := server.NewKeySecret(0)
	if err != nil {
		return store.Key{}, "", err
	}
	nk.Prefix, nk.Hash = prefix, hash
	if lifetime > 0 {
		exp := time.Now().UTC().Add(lifetime)
		nk.ExpiresAt = &exp
	}
	args := map[string]any{"command": "keys create", "member": nk.MemberName, "kind": nk.Kind, "role": nk.Role, "name": nk.Name}
	if nk.OwnerName != "" {
		args["owner"] = nk.OwnerName
	}
	if nk.ExpiresAt != nil {
		args["expires_at"] = nk.ExpiresAt.Format(time.RFC3339)
	}
	ev := operatorEvent(ws, source, "members.manage", "api_key",
		fmt.Sprintf("created %s key %s for %s (role %s)", nk.Kind, server.MaskKey(prefix), nk.MemberName, nk.Role), args)
	var k store.Key
	err = audited(ctx, s, ev, func(ctx context.Context) error {
		var err error
		k, err = s.CreateKey(ctx, nk)
		return err
	})
	if err != nil {
		return store.Key{}, "", fmt.Errorf("create key: %w", err)
	}
	return k, key, nil
}

// printKey shows a new key once.
func (m *Main) printKey(k store.Key, key string, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(m.Stdout).Encode(createdKey{ID: k.ID, Prefix: k.Prefix, Key: key})
	}
	fmt.Fprintf(m.Stdout, "Created %s key %s for %s (role %s).\n", k.Kind, k.ID, k.MemberName, k.Role)
	fmt.Fprintf(m.Stdout, "\n    %s\n\nThis is the only time the key is shown: store it now. It is displayed as %s from now on.\n", key, server.MaskKey(k.Prefix))
	return nil
}

func (m *Main) keysList(ctx context.Context, args []string) error {
	fs := m.newFlags("keys list")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseFlags(fs, args); err != nil || len(pos) > 0 {
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	keys, err := db.ListKeys(ctx, ws.ID)
	if err != nil {
		return err
	}
	if *asJSON {
		if keys == nil {
			keys = []store.Key{}
		}
		return json.NewEncoder(m.Stdout).Encode(keys)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKEY\tMEMBER\tKIND\tROLE\tCREATED\tEXPIRES\tSTATUS")
	for _, k := range keys {
		status := "active"
		switch {
		case k.RevokedAt != nil:
			status = "revoked"
		case !k.Active(now):
			status = "expired"
		}
		expires := "never"
		if k.ExpiresAt != nil {
			expires = k.ExpiresAt.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, server.MaskKey(k.Prefix), k.MemberName, k.Kind, k.Role,
			k.CreatedAt.UTC().Format(time.DateTime), expires, status)
	}
	return tw.Flush()
}

func (m *Main) keysRevoke(ctx context.Context, args []string) error {
	fs := m.newFlags("keys revoke")
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(m.Stderr, "usage: signalsmith keys revoke ID")
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	var k store.Key
	ev := operatorEvent(ws, store.SourceCLI, "members.manage", "api_key", "revoked",
		map[string]any{"command": "keys revoke", "key": pos[0]})
	err = audited(ctx, db, ev, func(ctx context.Context) error {
		var err error
		k, err = db.RevokeKey(ctx, ws.ID, pos[0], time.Now().UTC())
		return err
	})
	if err != nil {
		return keyError(pos[0], err)
	}
	fmt.Fprintf(m.Stdout, "Revoked key %s (%s) of %s. It is refused from its next call on.\n", k.ID, server.MaskKey(k.Prefix), k.MemberName)
	return nil
}

func (m *Main) keysRotate(ctx context.Context, args []string) error {
	fs := m.newFlags("keys rotate")
	asJSON := fs.Bool("json", false, `print {"id","prefix","key"} as JSON`)
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(m.Stderr, "usage: signalsmith keys rotate ID [--json]")
		return errUsage
	}
	db, ws, err := m.openStore(ctx)
	if err != nil {
		return err
	}
	key, prefix, hash, err := server.NewKeySecret(0)
	if err != nil {
		return err
	}
	var k store.Key
	ev := operatorEvent(ws, store.SourceCLI, "members.manage", "api_key", "rotated: the old key is revoked, its successor is "+server.MaskKey(prefix),
		map[string]any{"command": "keys rotate", "key": pos[0]})
	err = audited(ctx, db, ev, func(ctx context.Context) error {
		var err error
		k, err = db.ReplaceKey(ctx, ws.ID, pos[0], prefix, hash, time.Now().UTC())
		return err
	})
	if err != nil {
		return keyError(pos[0], err)
	}
	if !*asJSON {
		fmt.Fprintf(m.Stdout, "Rotated: the old key is revoked.\n")
	}
	return m.printKey(k, key, *asJSON)
}

// keyError explains a failed revoke or rotate.
func keyError(id string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no key %q in this workspace (see signalsmith keys list)", id)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("key %q is already revoked", id)
	default:
		return err
	}
}
