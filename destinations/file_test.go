package destinations_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/store"
)

func fileSender(t *testing.T, dir, format string) store.Sender {
	t.Helper()
	d, err := destinations.Build("ws_1", "dst_1", destinations.Spec{Name: "export", Type: "file", Category: "analytics",
		Environment: "sandbox", Dir: dir, Format: format}, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := destinations.Open(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFileWritesBatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format, name, want string
	}{
		{"jsonl", "syn_1-run_1-000001.jsonl",
			`{"op":"upsert","key":"c1","fields":{"email_sha256":"ab12"}}` + "\n" + `{"op":"delete","key":"c2"}` + "\n"},
		{"csv", "syn_1-run_1-000001.csv", "op,key,email_sha256\nupsert,c1,ab12\ndelete,c2,\n"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := fileSender(t, dir, tc.format)
			// The same batch twice (a resend after a crash) leaves one file.
			for range 2 {
				if res, err := s.Send(t.Context(), batch(1)); err != nil || res.Failed != nil {
					t.Fatalf("send = %+v, %v", res, err)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 || entries[0].Name() != tc.name {
				t.Fatalf("folder holds %v, want only %s", entries, tc.name)
			}
			data, _ := os.ReadFile(filepath.Join(dir, tc.name))
			if string(data) != tc.want {
				t.Fatalf("%s =\n%s\nwant\n%s", tc.name, data, tc.want)
			}
		})
	}
}

func TestFileRefusals(t *testing.T) {
	t.Parallel()
	t.Run("ids that would leave the folder", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := fileSender(t, dir, "jsonl")
		for _, b := range []store.SyncBatch{
			{SyncID: "../../etc", RunID: "run_1", Number: 1},
			{SyncID: "syn_1", RunID: "a/b", Number: 1},
			{SyncID: "", RunID: "run_1", Number: 1},
		} {
			if _, err := s.Send(t.Context(), b); !errors.Is(err, store.ErrDeliveryFailed) {
				t.Errorf("send %+v = %v, want ErrDeliveryFailed", b, err)
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("files written: %v", entries)
		}
	})
	t.Run("a folder removed since", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "gone")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		s := fileSender(t, dir, "csv")
		os.Remove(dir)
		_, err := s.Send(t.Context(), batch(1))
		if !errors.Is(err, store.ErrDeliveryFailed) || strings.Contains(err.Error(), dir) {
			t.Fatalf("send = %v; want ErrDeliveryFailed without the path", err)
		}
		if err := destinations.Test(t.Context(), s); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("test = %v, want a refusal", err)
		}
	})
}

func TestBuildRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file.txt")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// Root writes any folder its mode forbids; /proc refuses new
		// files to everyone.
		readOnly = "/proc"
	}
	hook := destinations.Spec{Name: "hook", Type: "webhook", Category: "crm", Environment: "production", URL: "https://crm.example.com/h"}
	file := destinations.Spec{Name: "export", Type: "file", Category: "analytics", Environment: "sandbox", Dir: dir}
	with := func(s destinations.Spec, f func(*destinations.Spec)) destinations.Spec { f(&s); return s }
	for _, tc := range []struct {
		name string
		spec destinations.Spec
		want string
	}{
		{"unknown type", with(hook, func(s *destinations.Spec) { s.Type = "ftp" }), `type "ftp" is not webhook or file`},
		{"unknown category", with(hook, func(s *destinations.Spec) { s.Category = "sales" }), `category "sales" is not one of`},
		{"unknown environment", with(hook, func(s *destinations.Spec) { s.Environment = "staging" }), `environment "staging" is not production or sandbox`},
		{"no name", with(hook, func(s *destinations.Spec) { s.Name = " " }), "--name is required"},
		{"plain http off loopback", with(hook, func(s *destinations.Spec) { s.URL = "http://crm.example.com/h" }), "plain http is allowed only on a loopback"},
		{"http to a name that resolves anywhere", with(hook, func(s *destinations.Spec) { s.URL = "http://127.0.0.1.nip.io/h" }), "must use https"},
		{"another scheme", with(hook, func(s *destinations.Spec) { s.URL = "file:///etc/passwd" }), "not an absolute URL"},
		{"credentials in the URL", with(hook, func(s *destinations.Spec) { s.URL = "https://u:p@crm.example.com/h" }), "must not carry a user or password"},
		{"no URL", with(hook, func(s *destinations.Spec) { s.URL = "" }), "needs --url"},
		{"batch size too big", with(hook, func(s *destinations.Spec) { s.BatchSize = 1 << 20 }), "batch size"},
		{"webhook with a folder", with(hook, func(s *destinations.Spec) { s.Dir = dir }), "not --dir"},
		{"folder missing", with(file, func(s *destinations.Spec) { s.Dir = filepath.Join(dir, "nope") }), "does not exist"},
		{"folder is a file", with(file, func(s *destinations.Spec) { s.Dir = notDir }), "is not a folder"},
		{"folder not writable", with(file, func(s *destinations.Spec) { s.Dir = readOnly }), "is not writable"},
		{"no folder", with(file, func(s *destinations.Spec) { s.Dir = "" }), "needs --dir"},
		{"unknown format", with(file, func(s *destinations.Spec) { s.Format = "xml" }), `format "xml" is not jsonl or csv`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := destinations.Build("ws_1", "dst_1", tc.spec, dir)
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("build = %v; want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ secret, want string }{
		{"", "needs a signing secret"},
		{"short", "too short"},
		{planted + "\nmore", "line break"},
	} {
		if err := destinations.CheckSecret([]byte(tc.secret)); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("secret %q: %v, want %q", tc.secret, err, tc.want)
		}
	}
}
