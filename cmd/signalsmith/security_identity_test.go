package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/server/servertest"
	"github.com/signalsmith/agent-server/store"
)

// Identity on the command line: every agent key names the human it acts
// for, and every new user member an email no other member has.

func TestKeysCreateNeedsAnOwnerForAgentsAndAnEmailForPeople(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	createKeyJSON(t, dir, "--name", "ada", "--role", "admin", "--email", "Ada@Example.test")
	createKeyJSON(t, dir, "--name", "helper", "--role", "member", "--kind", "agent", "--owner", "ada")
	cases := []struct {
		name string
		args []string
		says string
	}{
		{"an agent without --owner", []string{"--name", "bot", "--role", "member", "--kind", "agent"}, ""},
		{"an agent owned by nobody", []string{"--name", "bot", "--role", "member", "--kind", "agent", "--owner", "nobody"}, "not a user member"},
		{"an agent owned by an agent", []string{"--name", "bot", "--role", "member", "--kind", "agent", "--owner", "helper"}, "not a user member"},
		{"a person without --email", []string{"--name", "bob", "--role", "member"}, "email is required"},
		{"a second member with ada's email", []string{"--name", "ada2", "--role", "owner", "--email", "ada@example.test"}, "one person is one member"},
		{"ada's email in another case", []string{"--name", "ada3", "--role", "owner", "--email", "ADA@EXAMPLE.TEST"}, "one person is one member"},
		{"an email on an agent", []string{"--name", "bot", "--role", "member", "--kind", "agent", "--owner", "ada", "--email", "bot@example.test"}, "only for user keys"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := run(t, dir, append([]string{"keys", "create"}, tc.args...)...)
			if err == nil || keyRE.MatchString(out) {
				t.Fatalf("keys create %v succeeded: %s", tc.args, out)
			}
			if tc.says != "" && !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if tc.says == "" && !strings.Contains(stderr, "--owner") {
				t.Errorf("usage error %q does not ask for --owner", stderr)
			}
		})
	}
	out, _, err := run(t, dir, "keys", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var keys []store.Key
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("refused commands left keys behind: %s", out)
	}
}

func TestServeDemoAgentActsForTheDemoOwner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDemo(t, dir, freeAddr(t), "--scale", "100")
	agentKey := d.agentKey(t)
	// Ordinary agent work goes on: the demo agent acts for the demo owner.
	c := servertest.Client(t, "http://"+d.addr+"/mcp", agentKey, "identity-test", "1")
	if res := servertest.Call(t, c, "list_models", map[string]any{}); res.IsError {
		t.Fatalf("list_models by the demo agent: %s", servertest.Text(res))
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	m := &Main{DataDir: dir}
	defer m.Close()
	db, ws, err := m.openStore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	members, err := db.Members(context.Background(), ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]store.Member{}
	for _, mem := range members {
		byName[mem.Name] = mem
	}
	owner, agent := byName["demo-owner"], byName["demo-agent"]
	if owner.Email == "" || agent.OwnerID == "" || agent.OwnerID != owner.ID {
		t.Errorf("demo owner %+v, demo agent %+v: want the agent acting for the owner, who has an email", owner, agent)
	}
}
