package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/store"
)

// plantedSecret is a webhook secret that must never show anywhere but
// sealed.
const plantedSecret = "whsec_cli-planted-5b8e2d41c07a"

// runIn runs one command with stdin.
func runIn(t *testing.T, dataDir, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), append([]string{"--data-dir", dataDir}, args...))
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return stdout.String(), stderr.String(), err
}

// grepDir fails the test if any file under dir holds s.
func grepDir(t *testing.T, dir, s string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("%s holds the secret in clear", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDestinationsCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var hits, badSig atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		body.ReadFrom(r.Body)
		hits.Add(1)
		if destinations.Sign([]byte(plantedSecret), r.Header.Get(destinations.HeaderTimestamp), body.Bytes()) != r.Header.Get(destinations.HeaderSignature) {
			badSig.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(hs.Close)
	exports := filepath.Join(dir, "exports")
	if err := os.MkdirAll(exports, 0o700); err != nil {
		t.Fatal(err)
	}

	// The secret comes from stdin; --json prints the created object.
	out, stderr, err := runIn(t, dir, plantedSecret+"\n", "destinations", "create", "--name", "CRM hook", "--type", "webhook",
		"--category", "crm", "--environment", "production", "--url", hs.URL+"/hook", "--batch-size", "200", "--json")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	var hook store.Destination
	if err := json.Unmarshal([]byte(out), &hook); err != nil || !hook.HasCredentials || hook.Config["batch_size"] != float64(200) {
		t.Fatalf("create --json printed %s (%v)", out, err)
	}
	info, err := os.Stat(filepath.Join(dir, destinations.KeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v, %v; want it created with mode 0600", info, err)
	}
	if _, _, err := run(t, dir, "destinations", "create", "--name", "Exports", "--type", "file", "--category", "analytics",
		"--environment", "sandbox", "--dir", "exports", "--format", "csv"); err != nil {
		t.Fatal(err)
	}

	// Bad input: a clear error, and nothing is written.
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"unknown type", "", []string{"--name", "x", "--type", "ftp", "--category", "crm", "--environment", "sandbox"}, `type "ftp" is not webhook or file`},
		{"unknown category", plantedSecret, []string{"--name", "x", "--type", "webhook", "--category", "sales", "--environment", "sandbox", "--url", hs.URL}, `category "sales"`},
		{"unknown environment", plantedSecret, []string{"--name", "x", "--type", "webhook", "--category", "crm", "--environment", "staging", "--url", hs.URL}, `environment "staging"`},
		{"http off loopback", plantedSecret, []string{"--name", "x", "--type", "webhook", "--category", "crm", "--environment", "sandbox", "--url", "http://crm.example.com/h"}, "must use https"},
		{"missing secret", "", []string{"--name", "x", "--type", "webhook", "--category", "crm", "--environment", "sandbox", "--url", hs.URL}, "needs a signing secret"},
		{"missing folder", "", []string{"--name", "x", "--type", "file", "--category", "crm", "--environment", "sandbox", "--dir", "nope"}, "does not exist"},
		{"not writable folder", "", []string{"--name", "x", "--type", "file", "--category", "crm", "--environment", "sandbox", "--dir", "/proc"}, "not writable"},
		{"duplicate name", plantedSecret, []string{"--name", "CRM hook", "--type", "webhook", "--category", "crm", "--environment", "sandbox", "--url", hs.URL}, `named "CRM hook" exists already`},
		{"a file destination with a secret", "", []string{"--name", "x", "--type", "file", "--category", "crm", "--environment", "sandbox", "--dir", "exports", "--secret", plantedSecret}, "takes no secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runIn(t, dir, tc.stdin, append([]string{"destinations", "create"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), plantedSecret) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			out, _, err := run(t, dir, "destinations", "list", "--json")
			var all []store.Destination
			if err != nil || json.Unmarshal([]byte(out), &all) != nil || len(all) != 2 {
				t.Fatalf("after a refused create: %s (%v)", out, err)
			}
		})
	}

	// show, update, test.
	out, _, err = run(t, dir, "destinations", "show", "CRM hook")
	if err != nil || !strings.Contains(out, "secret: set (sealed") || !strings.Contains(out, "batch size: 200") {
		t.Fatalf("show: %s (%v)", out, err)
	}
	if _, _, err := run(t, dir, "destinations", "update", hook.ID, "--environment", "sandbox", "--timeout", "5s"); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, dir, "destinations", "test", hook.ID)
	if err != nil || hits.Load() != 1 || badSig.Load() != 0 {
		t.Fatalf("test after an update that kept the secret: %s (%v), %d hits, %d bad signatures", out, err, hits.Load(), badSig.Load())
	}
	if _, _, err := run(t, dir, "destinations", "test", "Exports"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, dir, "destinations", "update", hook.ID, "--type", "file"); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Fatalf("type change: %v", err)
	}

	// rotate-master: every credential opens with the new key only, and
	// the test delivery still signs with the same secret.
	before, err := destinations.LoadKeyring(func(string) string { return "" }, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, dir, "keys", "rotate-master")
	if err != nil || !strings.Contains(out, "Re-encrypted 1 destination credentials") {
		t.Fatalf("rotate-master: %s (%v)", out, err)
	}
	after, err := destinations.LoadKeyring(func(string) string { return "" }, dir, false)
	if err != nil || after.KeyID() == before.KeyID() {
		t.Fatalf("key after rotation: %v, %v", after, err)
	}
	if _, _, err := run(t, dir, "destinations", "test", hook.ID); err != nil || hits.Load() != 2 || badSig.Load() != 0 {
		t.Fatalf("test after rotation: %v, %d bad signatures", err, badSig.Load())
	}

	// delete; then nothing of the secret is anywhere in the data
	// directory, and the audit trail names each operation.
	if _, _, err := run(t, dir, "destinations", "delete", "Exports"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, dir, "destinations", "show", "Exports"); err == nil || !strings.Contains(err.Error(), "no destination") {
		t.Fatalf("show after delete: %v", err)
	}
	out, _, err = run(t, dir, "audit", "tail", "-n", "100", "--json")
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"destinations.create", "destinations.update", "destinations.test", "destinations.delete", "workspace.manage"} {
		if !strings.Contains(out, `"action":"`+action+`"`) {
			t.Errorf("no %s event in the audit trail", action)
		}
	}
	if strings.Contains(out, plantedSecret) {
		t.Error("the audit trail holds the secret")
	}
	grepDir(t, dir, plantedSecret)
}

// TestDemoCreatesMasterKey: serve --demo creates the master key file with
// mode 0600, and a plain serve of the same directory keeps that key.
func TestDemoCreatesMasterKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startDemo(t, dir, freeAddr(t), "--scale", "100")
	info, err := os.Stat(filepath.Join(dir, destinations.KeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("master key file after serve --demo: %v, %v; want mode 0600", info, err)
	}
	if info, err := os.Stat(filepath.Join(dir, "exports", "sandbox")); err != nil || !info.IsDir() {
		t.Fatalf("the demo's export folder: %v", err)
	}
}
