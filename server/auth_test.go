package server

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestNewKeySecretFormat(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 20 {
		key, prefix, hash, err := NewKeySecret(bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		p, secret, ok := splitKey(key)
		if !ok || p != prefix || len(key) != keyLen || !strings.HasPrefix(key, "ss_") {
			t.Fatalf("key %q does not parse back to prefix %q", key, prefix)
		}
		if bcrypt.CompareHashAndPassword(hash, []byte(secret)) != nil {
			t.Fatal("hash does not verify the secret")
		}
		if strings.Contains(string(hash), secret) {
			t.Fatal("hash contains the secret")
		}
		if seen[prefix] || seen[secret] {
			t.Fatal("generated keys repeat")
		}
		seen[prefix], seen[secret] = true, true
		if KeyPrefix(key) != prefix || MaskKey(prefix) != prefix+"_****" {
			t.Errorf("KeyPrefix/MaskKey of %q", key)
		}
	}
}

func TestSplitKeyRejectsMalformed(t *testing.T) {
	t.Parallel()
	good, _, _, err := NewKeySecret(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"ss_",
		good[:len(good)-1],
		good + "a",
		"xx" + good[2:],
		good[:15] + "-" + good[16:],
		strings.ToUpper(good),
		good[:20] + "1" + good[21:], // 1 is not in the alphabet
		good[:20] + "\x00" + good[21:],
	} {
		if _, _, ok := splitKey(bad); ok {
			t.Errorf("splitKey(%q) accepted a malformed key", bad)
		}
		if KeyPrefix(bad) != "" {
			t.Errorf("KeyPrefix(%q) = %q", bad, KeyPrefix(bad))
		}
	}
}
