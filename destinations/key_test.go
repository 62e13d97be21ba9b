package destinations_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/destinations"
	"github.com/signalsmith/agent-server/store"
)

const planted = "whsec_planted-secret-9f3c1a7e"

func noEnv(string) string { return "" }

func TestSealOpen(t *testing.T) {
	t.Parallel()
	kr, err := destinations.LoadKeyring(noEnv, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kr.Seal("ws_1", "dst_1", []byte(planted))
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyID != kr.KeyID() || bytes.Contains(c.Sealed, []byte(planted)) {
		t.Fatalf("sealed credential: key id %q, value in clear: %v", c.KeyID, bytes.Contains(c.Sealed, []byte(planted)))
	}
	got, err := kr.Open("ws_1", "dst_1", c)
	if err != nil || string(got) != planted {
		t.Fatalf("open = %q, %v", got, err)
	}
	other, err := destinations.LoadKeyring(noEnv, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(c.Sealed)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name    string
		kr      *destinations.Keyring
		ws, dst string
		c       store.Credential
	}{
		{"moved to another destination", kr, "ws_1", "dst_2", c},
		{"moved to another workspace", kr, "ws_2", "dst_1", c},
		{"a changed byte", kr, "ws_1", "dst_1", store.Credential{Sealed: tampered, KeyID: c.KeyID}},
		{"another master key", other, "ws_1", "dst_1", c},
		{"a forged key id", other, "ws_1", "dst_1", store.Credential{Sealed: c.Sealed, KeyID: other.KeyID()}},
		{"truncated", kr, "ws_1", "dst_1", store.Credential{Sealed: c.Sealed[:5], KeyID: c.KeyID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.kr.Open(tc.ws, tc.dst, tc.c)
			if err == nil || got != nil {
				t.Fatalf("open = %q, %v; want a refusal", got, err)
			}
			if strings.Contains(err.Error(), planted) {
				t.Fatalf("error carries the secret: %v", err)
			}
		})
	}
}

func TestLoadKeyring(t *testing.T) {
	t.Parallel()
	t.Run("the key file is created with mode 0600 and read back", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if _, err := destinations.LoadKeyring(noEnv, dir, false); !errors.Is(err, destinations.ErrNoMasterKey) {
			t.Fatalf("no key file, no create: %v, want ErrNoMasterKey", err)
		}
		kr, err := destinations.LoadKeyring(noEnv, dir, true)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(filepath.Join(dir, destinations.KeyFile))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v, %v; want mode 0600", info, err)
		}
		again, err := destinations.LoadKeyring(noEnv, dir, true)
		if err != nil || again.KeyID() != kr.KeyID() {
			t.Fatalf("second load: %v, key %s; want the same key %s", err, again.KeyID(), kr.KeyID())
		}
	})
	t.Run("a key file others may read is refused", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if _, err := destinations.LoadKeyring(noEnv, dir, true); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, destinations.KeyFile), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := destinations.LoadKeyring(noEnv, dir, true); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("load = %v, want a refusal that says chmod 600", err)
		}
	})
	t.Run("the environment's key wins and no file is written", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		key := bytes.Repeat([]byte{7}, 32)
		env := func(k string) string {
			if k == destinations.KeyEnv {
				return base64.StdEncoding.EncodeToString(key)
			}
			return ""
		}
		kr, err := destinations.LoadKeyring(env, dir, true)
		if err != nil || kr.KeyID() != destinations.KeyID(key) || !kr.FromEnv() {
			t.Fatalf("load = %v, %v", kr, err)
		}
		if _, err := os.Stat(filepath.Join(dir, destinations.KeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a key file was written: %v", err)
		}
	})
	t.Run("a bad key in the environment is refused", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{"short", base64.StdEncoding.EncodeToString(make([]byte, 16))} {
			env := func(string) string { return v }
			if _, err := destinations.LoadKeyring(env, t.TempDir(), true); err == nil || strings.Contains(err.Error(), v) {
				t.Fatalf("load with %q = %v; want a refusal that does not repeat the value", v, err)
			}
		}
	})
}

// memStore is the credentials a rotation re-encrypts, in memory.
type memStore struct {
	creds map[string]store.Credential
	fail  bool
}

func (m *memStore) ResealCredentials(_ context.Context, reseal func(ws, id string, c store.Credential) (store.Credential, error)) (int, error) {
	next := map[string]store.Credential{}
	for id, c := range m.creds {
		n, err := reseal("ws_1", id, c)
		if err != nil {
			return 0, err
		}
		next[id] = n
	}
	if m.fail {
		return 0, errors.New("disk full")
	}
	m.creds = next
	return len(next), nil
}

func TestRotate(t *testing.T) {
	t.Parallel()
	for _, fail := range []bool{false, true} {
		name := "re-encrypts every credential and drops the old key"
		if fail {
			name = "a failed transaction leaves every credential readable"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			old, err := destinations.LoadKeyring(noEnv, dir, true)
			if err != nil {
				t.Fatal(err)
			}
			m := &memStore{creds: map[string]store.Credential{}, fail: fail}
			for _, id := range []string{"dst_a", "dst_b"} {
				if m.creds[id], err = old.Seal("ws_1", id, []byte(planted+id)); err != nil {
					t.Fatal(err)
				}
			}
			next, err := destinations.NewKey()
			if err != nil {
				t.Fatal(err)
			}
			_, n, err := destinations.Rotate(context.Background(), m, old, next)
			if fail != (err != nil) {
				t.Fatalf("rotate = %d, %v", n, err)
			}
			loaded, err := destinations.LoadKeyring(noEnv, dir, false)
			if err != nil {
				t.Fatal(err)
			}
			if loaded.KeyID() != destinations.KeyID(next) {
				t.Fatalf("current key %s, want the new one", loaded.KeyID())
			}
			for id, c := range m.creds {
				if !fail && c.KeyID != loaded.KeyID() {
					t.Errorf("%s still sealed under %s", id, c.KeyID)
				}
				got, err := loaded.Open("ws_1", id, c)
				if err != nil || string(got) != planted+id {
					t.Errorf("%s after rotation: %q, %v", id, got, err)
				}
			}
			if !fail {
				data, _ := os.ReadFile(filepath.Join(dir, destinations.KeyFile))
				if strings.Contains(string(data), old.KeyID()) {
					t.Error("the old key is still in the key file")
				}
			}
		})
	}
}
