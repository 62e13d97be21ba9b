package sqlite_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
	"github.com/signalsmith/agent-server/store/sqlite"
)

// builtInRoles is a small stand-in for the release's permission table.
func builtInRoles() []store.Role {
	return []store.Role{
		{Name: "owner", Permissions: []string{"workspace.manage", "members.manage", "models.read", "audit.read"}},
		{Name: "admin", Permissions: []string{"members.manage", "models.read", "audit.read"}},
		{Name: "member", Permissions: []string{"models.read"}},
	}
}

// bundle is what most tests need: an open store in a temporary directory
// with two workspaces.
type bundle struct {
	ctx   context.Context
	db    *sqlite.DB
	dir   string
	ws    store.Workspace
	other store.Workspace
	raw   *sql.DB // a second connection to the same file
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ws, err := db.EnsureWorkspace(ctx, "acme", builtInRoles())
	if err != nil {
		t.Fatalf("ensure workspace: %v", err)
	}
	other, err := db.EnsureWorkspace(ctx, "globex", builtInRoles())
	if err != nil {
		t.Fatalf("ensure workspace: %v", err)
	}
	return &bundle{ctx: ctx, db: db, dir: dir, ws: ws, other: other, raw: raw(t, db.Path())}
}

// raw opens a second, independent connection to the store's file, for
// checks and fixtures the Store interface does not offer.
func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_time_format=sqlite")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// count returns the number of rows in table.
func count(t *testing.T, b *bundle, table string) int {
	t.Helper()
	var n int
	if err := b.raw.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// counts returns the row counts of every table a failed write could touch.
func counts(t *testing.T, b *bundle) map[string]int {
	t.Helper()
	out := make(map[string]int)
	for _, table := range []string{"workspaces", "members", "groups", "group_members", "roles", "role_permissions",
		"api_keys", "models", "audiences", "audience_versions", "destinations", "syncs", "audit_events"} {
		out[table] = count(t, b, table)
	}
	return out
}

func version(t *testing.T, b *bundle) int64 {
	t.Helper()
	v, err := b.db.RBACVersion(b.ctx)
	if err != nil {
		t.Fatalf("rbac version: %v", err)
	}
	return v
}

// newPrefix returns a unique key prefix.
func newPrefix(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 6)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	return "ss_" + hex.EncodeToString(buf)
}

// fakeHash stands in for a bcrypt hash: the store never verifies it.
func fakeHash(prefix string) []byte { return []byte("$2a$10$hash-of-" + prefix) }

func createKey(t *testing.T, b *bundle, nk store.NewKey) store.Key {
	t.Helper()
	if nk.WorkspaceID == "" {
		nk.WorkspaceID = b.ws.ID
	}
	if nk.Kind == "" {
		nk.Kind = store.KindUser
	}
	if nk.Prefix == "" {
		nk.Prefix = newPrefix(t)
	}
	if nk.Hash == nil {
		nk.Hash = fakeHash(nk.Prefix)
	}
	if nk.Email == "" && nk.Kind == store.KindUser {
		nk.Email = testEmail(nk.MemberName)
	}
	k, err := b.db.CreateKey(b.ctx, nk)
	if err != nil {
		t.Fatalf("create key for %s: %v", nk.MemberName, err)
	}
	return k
}

// testEmail is the email a test's user member gets unless it names one.
func testEmail(member string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(member)) + "@example.test"
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func TestOpenMigratesAndReopens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "nested", "data")
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("data directory mode = %o, want 700", perm)
	}
	if got, want := db.Path(), filepath.Join(dir, sqlite.FileName); got != want {
		t.Errorf("path = %s, want %s", got, want)
	}
	ws, err := db.EnsureWorkspace(ctx, "acme", builtInRoles())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	db, err = sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	again, err := db.EnsureWorkspace(ctx, "acme", builtInRoles())
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != ws.ID {
		t.Errorf("workspace id after reopen = %s, want %s", again.ID, ws.ID)
	}
	var versions []int
	rows, err := raw(t, db.Path()).Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if len(versions) == 0 || versions[0] != 1 {
		t.Errorf("schema_migrations = %v, want versions from 1, each once", versions)
	}
	for i := 1; i < len(versions); i++ {
		if versions[i] == versions[i-1] {
			t.Errorf("schema_migrations records version %d twice", versions[i])
		}
	}
	var mode string
	if err := raw(t, db.Path()).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %s, want wal", mode)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	path := db.Path()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := raw(t, path).Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', '2030-01-01 00:00:00+00:00')`); err != nil {
		t.Fatal(err)
	}
	db, err = sqlite.Open(ctx, dir)
	if err == nil {
		db.Close()
		t.Fatal("open succeeded on a database migrated by a newer binary")
	}
	if !strings.Contains(err.Error(), "9999") || !strings.Contains(err.Error(), "newer") {
		t.Errorf("error = %q, want it to name version 9999 as newer", err)
	}
}

func TestOpenEscapesPath(t *testing.T) {
	t.Parallel()
	// Characters that end or alter a URI path if left unescaped.
	dir := filepath.Join(t.TempDir(), "a dir?mode=memory#frag%20x")
	db, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	if _, err := db.EnsureWorkspace(context.Background(), "acme", builtInRoles()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Errorf("database not at the escaped path: %v", err)
	}
}

func TestEnsureWorkspace(t *testing.T) {
	t.Parallel()
	b := setup(t)

	v0 := version(t, b)
	again, err := b.db.EnsureWorkspace(b.ctx, "acme", builtInRoles())
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != b.ws.ID || !again.CreatedAt.Equal(b.ws.CreatedAt) {
		t.Errorf("second EnsureWorkspace = %+v, want %+v", again, b.ws)
	}
	if !strings.HasPrefix(b.ws.ID, "ws_") {
		t.Errorf("workspace id %q lacks the ws_ prefix", b.ws.ID)
	}
	if v := version(t, b); v != v0 {
		t.Errorf("unchanged roles bumped rbac_version %d -> %d", v0, v)
	}

	// A new release: member gains a permission, admin is gone, auditor is new.
	next := []store.Role{
		{Name: "owner", Permissions: []string{"workspace.manage", "members.manage", "models.read", "audit.read"}},
		{Name: "member", Permissions: []string{"models.read", "audiences.read", "audiences.read"}},
		{Name: "auditor", Permissions: []string{"audit.read"}},
	}
	if _, err := b.db.EnsureWorkspace(b.ctx, "acme", next); err != nil {
		t.Fatal(err)
	}
	v1 := version(t, b)
	if v1 == v0 {
		t.Error("changed roles did not bump rbac_version")
	}
	roles, err := b.db.Roles(b.ctx, b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Role{
		{WorkspaceID: b.ws.ID, Name: "auditor", BuiltIn: true, Permissions: []string{"audit.read"}},
		{WorkspaceID: b.ws.ID, Name: "member", BuiltIn: true, Permissions: []string{"audiences.read", "models.read"}},
		{WorkspaceID: b.ws.ID, Name: "owner", BuiltIn: true, Permissions: []string{"audit.read", "members.manage", "models.read", "workspace.manage"}},
	}
	if !reflect.DeepEqual(roles, want) {
		t.Errorf("roles = %+v\nwant %+v", roles, want)
	}
	// The other workspace keeps its roles until it is ensured itself.
	otherRoles, err := b.db.Roles(b.ctx, b.other.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(otherRoles) != 3 || otherRoles[0].Name != "admin" {
		t.Errorf("other workspace's roles = %+v, want owner, admin, member", otherRoles)
	}

	if _, err := b.db.EnsureWorkspace(b.ctx, "acme", next); err != nil {
		t.Fatal(err)
	}
	if v := version(t, b); v != v1 {
		t.Errorf("repeating the same roles bumped rbac_version %d -> %d", v1, v)
	}
}

func TestEnsureWorkspaceKeepsHeldRetiredRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	createKey(t, b, store.NewKey{MemberName: "ada", Role: "admin"})
	next := []store.Role{{Name: "owner", Permissions: []string{"workspace.manage"}}}
	if _, err := b.db.EnsureWorkspace(b.ctx, "acme", next); err != nil {
		t.Fatal(err)
	}
	roles, err := b.db.Roles(b.ctx, b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]bool)
	for _, r := range roles {
		got[r.Name] = r.BuiltIn
	}
	// admin is held by ada: kept, as a custom role; member is held by nobody: gone.
	if builtIn, ok := got["admin"]; !ok || builtIn {
		t.Errorf("held retired role admin: present=%v built_in=%v, want present and custom", ok, builtIn)
	}
	if _, ok := got["member"]; ok {
		t.Error("unheld retired role member still exists")
	}
}

func TestEnsureWorkspaceInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name  string
		ws    string
		roles []store.Role
	}{
		{"empty name", "", builtInRoles()},
		{"padded name", " acme ", builtInRoles()},
		{"bad role name", "new", []store.Role{{Name: "Owner!"}}},
		{"bad permission", "new", []store.Role{{Name: "owner", Permissions: []string{"everything"}}}},
		{"duplicate role", "new", []store.Role{{Name: "owner"}, {Name: "owner"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counts(t, b)
			_, err := b.db.EnsureWorkspace(b.ctx, tt.ws, tt.roles)
			wantErr(t, err, store.ErrInvalid)
			if after := counts(t, b); !reflect.DeepEqual(before, after) {
				t.Errorf("rows changed: %v -> %v", before, after)
			}
		})
	}
}

func TestKeyLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v0 := version(t, b)
	prefix := newPrefix(t)
	hash := fakeHash(prefix)
	k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "admin", Name: "laptop", Prefix: prefix, Hash: hash})
	if !strings.HasPrefix(k.ID, "key_") || !strings.HasPrefix(k.MemberID, "mem_") {
		t.Errorf("ids %q, %q lack their prefixes", k.ID, k.MemberID)
	}
	if k.Hash != nil {
		t.Error("CreateKey returned the hash")
	}
	if k.MemberName != "ada" || k.Name != "laptop" || k.Role != "admin" || k.Kind != store.KindUser || k.Prefix != prefix {
		t.Errorf("created key = %+v", k)
	}
	v1 := version(t, b)
	if v1 == v0 {
		t.Error("creating a member did not bump rbac_version")
	}

	got, err := b.db.KeyByPrefix(b.ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Hash) != string(hash) || got.ID != k.ID {
		t.Errorf("KeyByPrefix = %+v, want key %s with its hash", got, k.ID)
	}

	now := time.Now()
	p, err := b.db.Principal(b.ctx, k.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Principal{WorkspaceID: b.ws.ID, MemberID: k.MemberID, MemberName: "ada", Kind: store.KindUser,
		Role: "admin", KeyID: k.ID, KeyPrefix: prefix, RBACVersion: v1}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("principal = %+v\nwant %+v", p, want)
	}

	// A second key for the same member reuses it and changes no RBAC state.
	k2 := createKey(t, b, store.NewKey{MemberName: "ada", Role: "admin"})
	if k2.MemberID != k.MemberID {
		t.Errorf("second key's member = %s, want %s", k2.MemberID, k.MemberID)
	}
	if v := version(t, b); v != v1 {
		t.Errorf("second key for an existing member bumped rbac_version %d -> %d", v1, v)
	}
	keys, err := b.db.ListKeys(b.ctx, b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != k2.ID || keys[1].ID != k.ID {
		t.Errorf("ListKeys = %+v, want the two keys newest first", keys)
	}
	for _, lk := range keys {
		if lk.Hash != nil {
			t.Error("ListKeys returned a hash")
		}
	}
	if others, err := b.db.ListKeys(b.ctx, b.other.ID); err != nil || len(others) != 0 {
		t.Errorf("other workspace's keys = %v, %v; want none", others, err)
	}

	// Another workspace cannot revoke it.
	_, err = b.db.RevokeKey(b.ctx, b.other.ID, k.ID, now)
	wantErr(t, err, store.ErrNotFound)

	revoked, err := b.db.RevokeKey(b.ctx, b.ws.ID, prefix, now)
	if err != nil {
		t.Fatal(err)
	}
	if revoked.RevokedAt == nil || revoked.ID != k.ID {
		t.Errorf("revoked key = %+v", revoked)
	}
	_, err = b.db.Principal(b.ctx, k.ID, now)
	wantErr(t, err, store.ErrNotFound)
	got, err = b.db.KeyByPrefix(b.ctx, prefix)
	if err != nil {
		t.Fatalf("KeyByPrefix of a revoked key: %v", err)
	}
	if got.RevokedAt == nil || got.Active(now) || len(got.Hash) == 0 {
		t.Errorf("revoked key by prefix = %+v, want revoked with hash", got)
	}
	_, err = b.db.RevokeKey(b.ctx, b.ws.ID, k.ID, now)
	wantErr(t, err, store.ErrConflict)

	// The other key still works.
	if _, err := b.db.Principal(b.ctx, k2.ID, now); err != nil {
		t.Errorf("principal of the other key: %v", err)
	}
	_, err = b.db.Principal(b.ctx, "key_unknown", now)
	wantErr(t, err, store.ErrNotFound)
	_, err = b.db.KeyByPrefix(b.ctx, "ss_unknown")
	wantErr(t, err, store.ErrNotFound)
}

func TestPrincipalExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	exp := time.Now().Add(time.Hour).UTC()
	k := createKey(t, b, store.NewKey{MemberName: "bob", Role: "member", ExpiresAt: &exp})
	if k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) {
		t.Errorf("expires_at = %v, want %v", k.ExpiresAt, exp)
	}
	tests := []struct {
		name string
		now  time.Time
		ok   bool
	}{
		{"before", exp.Add(-time.Minute), true},
		{"a nanosecond before", exp.Add(-time.Nanosecond), true},
		{"at expiry", exp, false},
		{"after", exp.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.db.Principal(b.ctx, k.ID, tt.now)
			if tt.ok && err != nil {
				t.Errorf("principal: %v", err)
			}
			if !tt.ok {
				wantErr(t, err, store.ErrNotFound)
			}
		})
	}
}

func TestCreateKeyRejects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	createKey(t, b, store.NewKey{MemberName: "ada", Role: "admin"})
	createKey(t, b, store.NewKey{MemberName: "bot", Role: "member", Kind: store.KindAgent, OwnerName: "ada"})
	taken := createKey(t, b, store.NewKey{MemberName: "cy", Role: "member"})
	if err := b.db.PutRole(b.ctx, store.Role{WorkspaceID: b.other.ID, Name: "auditor", Permissions: []string{"audit.read"}}); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)

	tests := []struct {
		name string
		nk   store.NewKey
		want error
	}{
		{"unknown role", store.NewKey{MemberName: "new", Role: "root"}, store.ErrInvalid},
		{"other workspace's custom role", store.NewKey{MemberName: "new", Role: "auditor"}, store.ErrInvalid},
		{"bad kind", store.NewKey{MemberName: "new", Role: "member", Kind: "robot"}, store.ErrInvalid},
		{"no member name", store.NewKey{Role: "member"}, store.ErrInvalid},
		{"empty hash", store.NewKey{MemberName: "new", Role: "member", Hash: []byte{}}, store.ErrInvalid},
		{"expired", store.NewKey{MemberName: "new", Role: "member", ExpiresAt: &past}, store.ErrInvalid},
		{"owner unknown", store.NewKey{MemberName: "agent", Role: "member", Kind: store.KindAgent, OwnerName: "nobody"}, store.ErrInvalid},
		{"owner is an agent", store.NewKey{MemberName: "agent", Role: "member", Kind: store.KindAgent, OwnerName: "bot"}, store.ErrInvalid},
		{"owner on a user key", store.NewKey{MemberName: "new", Role: "member", OwnerName: "ada"}, store.ErrInvalid},
		{"agent without an owner", store.NewKey{MemberName: "agent", Role: "member", Kind: store.KindAgent}, store.ErrInvalid},
		{"email on an agent key", store.NewKey{MemberName: "agent", Role: "member", Kind: store.KindAgent, OwnerName: "ada", Email: "agent@example.test"}, store.ErrInvalid},
		{"malformed email", store.NewKey{MemberName: "new", Role: "member", Email: "not an email"}, store.ErrInvalid},
		{"email of another member", store.NewKey{MemberName: "new", Role: "member", Email: "ADA@example.test"}, store.ErrConflict},
		{"existing member, other email", store.NewKey{MemberName: "ada", Role: "admin", Email: "ada@elsewhere.test"}, store.ErrConflict},
		{"existing member, other role", store.NewKey{MemberName: "ada", Role: "member"}, store.ErrConflict},
		{"existing member, other kind", store.NewKey{MemberName: "ada", Role: "admin", Kind: store.KindAgent, OwnerName: "cy"}, store.ErrConflict},
		{"prefix taken", store.NewKey{MemberName: "new", Role: "member", Prefix: taken.Prefix}, store.ErrConflict},
		{"unknown workspace", store.NewKey{WorkspaceID: "ws_nope", MemberName: "new", Role: "member"}, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nk := tt.nk
			if nk.WorkspaceID == "" {
				nk.WorkspaceID = b.ws.ID
			}
			if nk.Kind == "" {
				nk.Kind = store.KindUser
			}
			if nk.Prefix == "" {
				nk.Prefix = newPrefix(t)
			}
			if nk.Hash == nil {
				nk.Hash = fakeHash(nk.Prefix)
			}
			if nk.Email == "" && nk.Kind == store.KindUser && nk.MemberName != "" {
				nk.Email = testEmail(nk.MemberName)
			}
			before := counts(t, b)
			v := version(t, b)
			_, err := b.db.CreateKey(b.ctx, nk)
			wantErr(t, err, tt.want)
			if len(nk.Hash) > 0 && strings.Contains(err.Error(), string(nk.Hash)) {
				t.Errorf("error %q contains the key hash", err)
			}
			if after := counts(t, b); !reflect.DeepEqual(before, after) {
				t.Errorf("rows changed: %v -> %v", before, after)
			}
			if got := version(t, b); got != v {
				t.Errorf("rbac_version changed %d -> %d", v, got)
			}
		})
	}
}

func TestAgentKeyOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	human := createKey(t, b, store.NewKey{MemberName: "ada", Role: "admin"})
	agent := createKey(t, b, store.NewKey{MemberName: "ada's assistant", Role: "member", Kind: store.KindAgent, OwnerName: "ada"})
	p, err := b.db.Principal(b.ctx, agent.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != store.KindAgent || p.OwnerID != human.MemberID {
		t.Errorf("agent principal = %+v, want kind agent owned by %s", p, human.MemberID)
	}
	// The same agent with another owner is a conflict, without one it is
	// refused; with the same owner it gets another key.
	createKey(t, b, store.NewKey{MemberName: "bob", Role: "member"})
	_, err = b.db.CreateKey(b.ctx, store.NewKey{WorkspaceID: b.ws.ID, MemberName: "ada's assistant", Role: "member",
		Kind: store.KindAgent, OwnerName: "bob", Prefix: newPrefix(t), Hash: []byte("h")})
	wantErr(t, err, store.ErrConflict)
	_, err = b.db.CreateKey(b.ctx, store.NewKey{WorkspaceID: b.ws.ID, MemberName: "ada's assistant", Role: "member",
		Kind: store.KindAgent, Prefix: newPrefix(t), Hash: []byte("h")})
	wantErr(t, err, store.ErrInvalid)
	createKey(t, b, store.NewKey{MemberName: "ada's assistant", Role: "member", Kind: store.KindAgent, OwnerName: "ada"})
}

func TestReplaceKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	exp := time.Now().Add(48 * time.Hour).UTC()
	old := createKey(t, b, store.NewKey{MemberName: "ada", Role: "admin", Name: "ci", ExpiresAt: &exp})
	now := time.Now()

	// A taken prefix fails the rotation as a whole: the old key stays active.
	other := createKey(t, b, store.NewKey{MemberName: "bob", Role: "member"})
	_, err := b.db.ReplaceKey(b.ctx, b.ws.ID, old.ID, other.Prefix, []byte("h"), now)
	wantErr(t, err, store.ErrConflict)
	if _, err := b.db.Principal(b.ctx, old.ID, now); err != nil {
		t.Fatalf("old key after a failed rotation: %v", err)
	}
	_, err = b.db.ReplaceKey(b.ctx, b.other.ID, old.ID, newPrefix(t), []byte("h"), now)
	wantErr(t, err, store.ErrNotFound)
	_, err = b.db.ReplaceKey(b.ctx, b.ws.ID, old.ID, "", []byte("h"), now)
	wantErr(t, err, store.ErrInvalid)

	prefix := newPrefix(t)
	next, err := b.db.ReplaceKey(b.ctx, b.ws.ID, old.Prefix, prefix, fakeHash(prefix), now)
	if err != nil {
		t.Fatal(err)
	}
	if next.ID == old.ID || next.Prefix != prefix || next.MemberID != old.MemberID || next.Name != "ci" ||
		next.Kind != old.Kind || next.Role != "admin" || next.ExpiresAt == nil || !next.ExpiresAt.Equal(exp) || next.Hash != nil {
		t.Errorf("rotated key = %+v, want a new key for the same member, name, kind and expiry", next)
	}
	if _, err := b.db.Principal(b.ctx, next.ID, now); err != nil {
		t.Errorf("new key: %v", err)
	}
	_, err = b.db.Principal(b.ctx, old.ID, now)
	wantErr(t, err, store.ErrNotFound)
	gotOld, err := b.db.KeyByPrefix(b.ctx, old.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if gotOld.RevokedAt == nil {
		t.Error("old key is not revoked after rotation")
	}
	var replacedBy string
	if err := b.raw.QueryRow(`SELECT replaced_by FROM api_keys WHERE id = ?`, old.ID).Scan(&replacedBy); err != nil {
		t.Fatal(err)
	}
	if replacedBy != next.ID {
		t.Errorf("replaced_by = %q, want %q", replacedBy, next.ID)
	}

	_, err = b.db.ReplaceKey(b.ctx, b.ws.ID, old.ID, newPrefix(t), []byte("h"), now)
	wantErr(t, err, store.ErrConflict)
	// An expired key cannot be rotated either: its successor would be dead.
	_, err = b.db.ReplaceKey(b.ctx, b.ws.ID, next.ID, newPrefix(t), []byte("h"), exp.Add(time.Second))
	wantErr(t, err, store.ErrConflict)
}

func TestLastUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *sqlite.DB {
		db, err := sqlite.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	ws, err := db.EnsureWorkspace(ctx, "acme", builtInRoles())
	if err != nil {
		t.Fatal(err)
	}
	k, err := db.CreateKey(ctx, store.NewKey{WorkspaceID: ws.ID, MemberName: "ada", Kind: store.KindUser, Role: "admin",
		Email: "ada@example.test", Prefix: "ss_lastused", Hash: []byte("h")})
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func(db *sqlite.DB) *time.Time {
		t.Helper()
		got, err := db.KeyByPrefix(ctx, k.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsedAt
	}

	t0 := time.Now().UTC()
	for i := range 5 {
		if _, err := db.Principal(ctx, k.ID, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close() // waits for the background write
	db = open()
	if got := lastUsed(db); got == nil || !got.Equal(t0) {
		t.Fatalf("last_used_at = %v, want %v (the first use of the minute)", got, t0)
	}

	// Within the minute nothing is written; after it the new use is.
	if _, err := db.Principal(ctx, k.ID, t0.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open()
	if got := lastUsed(db); got == nil || !got.Equal(t0) {
		t.Errorf("last_used_at = %v after a use within the minute, want %v", got, t0)
	}
	t1 := t0.Add(2 * time.Minute)
	if _, err := db.Principal(ctx, k.ID, t1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open()
	defer db.Close()
	if got := lastUsed(db); got == nil || !got.Equal(t1) {
		t.Errorf("last_used_at = %v, want %v", got, t1)
	}
}

func TestCustomRoles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v0 := version(t, b)
	analyst := store.Role{WorkspaceID: b.ws.ID, Name: "analyst", Permissions: []string{"models.read", "audiences.read", "models.read"}}
	if err := b.db.PutRole(b.ctx, analyst); err != nil {
		t.Fatal(err)
	}
	v1 := version(t, b)
	if v1 == v0 {
		t.Error("PutRole did not bump rbac_version")
	}
	if err := b.db.PutRole(b.ctx, analyst); err != nil {
		t.Fatal(err)
	}
	if v := version(t, b); v != v1 {
		t.Errorf("putting the same role bumped rbac_version %d -> %d", v1, v)
	}
	roles, err := b.db.Roles(b.ctx, b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got *store.Role
	for i := range roles {
		if roles[i].Name == "analyst" {
			got = &roles[i]
		}
	}
	if got == nil || got.BuiltIn || !reflect.DeepEqual(got.Permissions, []string{"audiences.read", "models.read"}) {
		t.Fatalf("analyst = %+v, want custom with sorted unique permissions", got)
	}
	if otherRoles, _ := b.db.Roles(b.ctx, b.other.ID); len(otherRoles) != 3 {
		t.Errorf("other workspace has %d roles, want its 3 built-ins only", len(otherRoles))
	}

	// Replace: permissions become exactly the new list.
	analyst.Permissions = []string{"syncs.read"}
	if err := b.db.PutRole(b.ctx, analyst); err != nil {
		t.Fatal(err)
	}
	roles, _ = b.db.Roles(b.ctx, b.ws.ID)
	for _, r := range roles {
		if r.Name == "analyst" && !reflect.DeepEqual(r.Permissions, []string{"syncs.read"}) {
			t.Errorf("replaced analyst permissions = %v", r.Permissions)
		}
	}

	rejects := []struct {
		name string
		role store.Role
		want error
	}{
		{"built-in name", store.Role{WorkspaceID: b.ws.ID, Name: "admin", Permissions: []string{"models.read"}}, store.ErrConflict},
		{"uppercase name", store.Role{WorkspaceID: b.ws.ID, Name: "Analyst"}, store.ErrInvalid},
		{"space in name", store.Role{WorkspaceID: b.ws.ID, Name: "data team"}, store.ErrInvalid},
		{"empty name", store.Role{WorkspaceID: b.ws.ID}, store.ErrInvalid},
		{"long name", store.Role{WorkspaceID: b.ws.ID, Name: strings.Repeat("a", 65)}, store.ErrInvalid},
		{"bad permission", store.Role{WorkspaceID: b.ws.ID, Name: "x", Permissions: []string{"models"}}, store.ErrInvalid},
		{"marked built-in", store.Role{WorkspaceID: b.ws.ID, Name: "x", BuiltIn: true}, store.ErrInvalid},
		{"unknown workspace", store.Role{WorkspaceID: "ws_nope", Name: "x"}, store.ErrNotFound},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			before := counts(t, b)
			wantErr(t, b.db.PutRole(b.ctx, tt.role), tt.want)
			if after := counts(t, b); !reflect.DeepEqual(before, after) {
				t.Errorf("rows changed: %v -> %v", before, after)
			}
		})
	}

	// Delete rules: built-in and held roles stay.
	wantErr(t, b.db.DeleteRole(b.ctx, b.ws.ID, "admin"), store.ErrConflict)
	wantErr(t, b.db.DeleteRole(b.ctx, b.ws.ID, "nope"), store.ErrNotFound)
	wantErr(t, b.db.DeleteRole(b.ctx, b.other.ID, "analyst"), store.ErrNotFound)
	k := createKey(t, b, store.NewKey{MemberName: "ana", Role: "analyst"})
	wantErr(t, b.db.DeleteRole(b.ctx, b.ws.ID, "analyst"), store.ErrConflict)
	if err := b.db.SetMemberRole(b.ctx, b.ws.ID, k.MemberID, "member"); err != nil {
		t.Fatal(err)
	}
	v2 := version(t, b)
	if err := b.db.DeleteRole(b.ctx, b.ws.ID, "analyst"); err != nil {
		t.Fatalf("delete unheld custom role: %v", err)
	}
	if v := version(t, b); v == v2 {
		t.Error("DeleteRole did not bump rbac_version")
	}
	if n := count(t, b, "role_permissions WHERE role = 'analyst'"); n != 0 {
		t.Errorf("%d permissions of the deleted role remain", n)
	}
}

func TestSetMemberRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member"})
	v0 := version(t, b)
	if err := b.db.SetMemberRole(b.ctx, b.ws.ID, k.MemberID, "admin"); err != nil {
		t.Fatal(err)
	}
	v1 := version(t, b)
	if v1 == v0 {
		t.Error("SetMemberRole did not bump rbac_version")
	}
	p, err := b.db.Principal(b.ctx, k.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Role != "admin" || p.RBACVersion != v1 {
		t.Errorf("principal role %q version %d, want admin at %d", p.Role, p.RBACVersion, v1)
	}
	if err := b.db.SetMemberRole(b.ctx, b.ws.ID, k.MemberID, "admin"); err != nil {
		t.Fatal(err)
	}
	if v := version(t, b); v != v1 {
		t.Errorf("setting the same role bumped rbac_version %d -> %d", v1, v)
	}
	wantErr(t, b.db.SetMemberRole(b.ctx, b.ws.ID, k.MemberID, "root"), store.ErrInvalid)
	wantErr(t, b.db.SetMemberRole(b.ctx, b.other.ID, k.MemberID, "owner"), store.ErrNotFound)
	if p, _ := b.db.Principal(b.ctx, k.ID, time.Now()); p.Role != "admin" {
		t.Errorf("role after refused changes = %q, want admin", p.Role)
	}
	members, err := b.db.Members(b.ctx, b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].Role != "admin" || members[0].ID != k.MemberID {
		t.Errorf("members = %+v", members)
	}
	if others, _ := b.db.Members(b.ctx, b.other.ID); len(others) != 0 {
		t.Errorf("other workspace's members = %+v, want none", others)
	}
}

func TestGroups(t *testing.T) {
	t.Parallel()
	b := setup(t)
	k := createKey(t, b, store.NewKey{MemberName: "ada", Role: "member"})
	v0 := version(t, b)
	for _, g := range []string{"emea", "analysts", "emea"} {
		if err := b.db.AddToGroup(b.ctx, b.ws.ID, k.MemberID, g); err != nil {
			t.Fatal(err)
		}
	}
	v1 := version(t, b)
	if v1 != v0+2 {
		t.Errorf("rbac_version %d -> %d, want two bumps for two new memberships", v0, v1)
	}
	p, err := b.db.Principal(b.ctx, k.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Groups, []string{"analysts", "emea"}) || p.RBACVersion != v1 {
		t.Errorf("principal groups %v version %d, want [analysts emea] at %d", p.Groups, p.RBACVersion, v1)
	}
	wantErr(t, b.db.AddToGroup(b.ctx, b.other.ID, k.MemberID, "emea"), store.ErrNotFound)
	if err := b.db.RemoveFromGroup(b.ctx, b.ws.ID, k.MemberID, "emea"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.db.RemoveFromGroup(b.ctx, b.ws.ID, k.MemberID, "emea"), store.ErrNotFound)
	members, err := b.db.Members(b.ctx, b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || !reflect.DeepEqual(members[0].Groups, []string{"analysts"}) {
		t.Errorf("members = %+v, want ada in analysts only", members)
	}
}
