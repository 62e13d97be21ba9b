package destinations

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/signalsmith/agent-server/store"
)

// KeyEnv is the environment variable that holds the master key (32 bytes,
// base64 or hex). When it is set the key file is not used.
const KeyEnv = "SIGNALSMITH_MASTER_KEY"

// KeyFile is the name of the key file in the data directory, used when
// KeyEnv is not set.
const KeyFile = "master.key"

// ErrNoMasterKey means there is no master key: neither KeyEnv nor a key
// file. The command line creates the key file when it needs one.
var ErrNoMasterKey = errors.New("no master key: set " + KeyEnv + " or run signalsmith serve --demo or signalsmith destinations create, which create " + KeyFile + " in the data directory")

// errSeal is every failure to open a sealed credential: a wrong key, a
// credential moved to another destination, a changed byte. It says nothing
// more, on purpose.
var errSeal = errors.New("the credential cannot be decrypted with the master key (was it rotated or changed outside signalsmith?)")

// sealVersion is the first byte of every sealed credential.
const sealVersion = 1

// Keyring holds the master keys credentials are sealed under, by key id:
// Current seals, any of them opens what it sealed. It has one key except
// during a rotation (Rotate), when the key file holds the old and the new
// key so that a crash in between loses nothing. A Keyring is read-only
// once loaded and safe for concurrent use.
type Keyring struct {
	current string
	keys    map[string][]byte
	// path is the key file the keys came from; empty for KeyEnv.
	path string
}

// keyFile is the key file's JSON.
type keyFile struct {
	Current string        `json:"current"`
	Keys    []keyFileItem `json:"keys"`
}

type keyFileItem struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// KeyID names a master key by a digest of it, so the key id a credential
// is stored with says which key opens it without saying anything of the
// key.
func KeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("signalsmith master key id\x00"), key...))
	return "mk_" + hex.EncodeToString(sum[:8])
}

// ParseKey reads a master key written as base64 (standard or URL, padded
// or not) or hex. It must be 32 bytes (AES-256).
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, dec := range []func(string) ([]byte, error){
		hex.DecodeString,
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString,
	} {
		if k, err := dec(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("a master key is 32 random bytes written as base64 or hex (openssl rand -base64 32)")
}

// NewKey returns a new random master key.
func NewKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("new master key: %w", err)
	}
	return k, nil
}

// LoadKeyring returns the master key: from KeyEnv (read with getenv) when
// set, else from the key file in dataDir. With create, a missing key file
// is created with a new key (mode 0600); without, it is ErrNoMasterKey. A
// key file that others than its owner may read is refused, as is a bad
// key.
func LoadKeyring(getenv func(string) string, dataDir string, create bool) (*Keyring, error) {
	if v := getenv(KeyEnv); v != "" {
		k, err := ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		id := KeyID(k)
		return &Keyring{current: id, keys: map[string][]byte{id: k}}, nil
	}
	path := filepath.Join(dataDir, KeyFile)
	kr, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, ErrNoMasterKey
		}
		k, err := NewKey()
		if err != nil {
			return nil, err
		}
		kr = &Keyring{current: KeyID(k), keys: map[string][]byte{KeyID(k): k}, path: path}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create the master key: %w", err)
		}
		// O_EXCL: two processes creating the file at once never end with
		// credentials sealed under a key that was overwritten.
		if err := kr.write(true); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return readKeyFile(path)
			}
			return nil, err
		}
		return kr, nil
	}
	return kr, err
}

func readKeyFile(path string) (*Keyring, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s may be read by others (mode %v): chmod 600 it", path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s is not a signalsmith key file", path)
	}
	kr := &Keyring{current: f.Current, keys: map[string][]byte{}, path: path}
	for _, it := range f.Keys {
		k, err := ParseKey(it.Key)
		if err != nil || KeyID(k) != it.ID {
			return nil, fmt.Errorf("%s: key %q is damaged", path, it.ID)
		}
		kr.keys[it.ID] = k
	}
	if _, ok := kr.keys[kr.current]; !ok {
		return nil, fmt.Errorf("%s: the current key %q is missing", path, kr.current)
	}
	return kr, nil
}

// write stores the keyring in its key file with mode 0600: a new file
// (failing with fs.ErrExist if there is one) when excl, else replacing it
// atomically.
func (k *Keyring) write(excl bool) error {
	f := keyFile{Current: k.current}
	for id, key := range k.keys {
		item := keyFileItem{ID: id, Key: base64.StdEncoding.EncodeToString(key)}
		// The current key first, so a person reading the file sees it.
		if id == k.current {
			f.Keys = append([]keyFileItem{item}, f.Keys...)
		} else {
			f.Keys = append(f.Keys, item)
		}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if excl {
		fh, err := os.OpenFile(k.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := fh.Write(data); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Sync(); err != nil {
			fh.Close()
			return err
		}
		return fh.Close()
	}
	return writeAtomic(k.path, data, 0o600)
}

// KeyID is the id of the key that seals.
func (k *Keyring) KeyID() string { return k.current }

// FromEnv reports whether the keyring came from KeyEnv rather than the
// key file.
func (k *Keyring) FromEnv() bool { return k.path == "" }

// aad binds a sealed credential to its destination and key: a credential
// copied to another destination's row does not open.
func aad(workspaceID, destinationID, keyID string) []byte {
	return []byte("signalsmith destination credential\x00" + workspaceID + "\x00" + destinationID + "\x00" + keyID)
}

// Seal encrypts a destination's secret with AES-256-GCM under the current
// key, bound to the destination.
func (k *Keyring) Seal(workspaceID, destinationID string, secret []byte) (store.Credential, error) {
	return seal(k.current, k.keys[k.current], workspaceID, destinationID, secret)
}

func seal(keyID string, key []byte, workspaceID, destinationID string, secret []byte) (store.Credential, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return store.Credential{}, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return store.Credential{}, fmt.Errorf("seal credential: %w", err)
	}
	out := append([]byte{sealVersion}, nonce...)
	out = gcm.Seal(out, nonce, secret, aad(workspaceID, destinationID, keyID))
	return store.Credential{Sealed: out, KeyID: keyID}, nil
}

// Open decrypts a destination's sealed credential with the key named by
// its key id. Its error says only that it cannot.
func (k *Keyring) Open(workspaceID, destinationID string, c store.Credential) ([]byte, error) {
	key, ok := k.keys[c.KeyID]
	if !ok {
		return nil, errSeal
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	n := gcm.NonceSize()
	if len(c.Sealed) < 1+n || c.Sealed[0] != sealVersion {
		return nil, errSeal
	}
	secret, err := gcm.Open(nil, c.Sealed[1:1+n], c.Sealed[1+n:], aad(workspaceID, destinationID, c.KeyID))
	if err != nil {
		return nil, errSeal
	}
	return secret, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return cipher.NewGCM(block)
}

// Resealer is the store side of a rotation (store.Destinations).
type Resealer interface {
	ResealCredentials(ctx context.Context, reseal func(workspaceID, id string, c store.Credential) (store.Credential, error)) (int, error)
}

// Rotate re-encrypts every stored credential under the master key next
// and returns the keyring to use from now on with the number of
// credentials re-encrypted. All credentials change in one transaction of
// s (which records ctx's pending audit event) or none does.
//
// With the key file, next is written to it beside the old key before
// anything is re-encrypted and the old key is removed after, so a crash at
// any point leaves every credential with a key that opens it. With KeyEnv
// the caller gives next (the key the operator will set in KeyEnv) and
// nothing is written but the credentials.
func Rotate(ctx context.Context, s Resealer, old *Keyring, next []byte) (*Keyring, int, error) {
	if len(next) != 32 {
		return nil, 0, errors.New("the new master key must be 32 bytes")
	}
	id := KeyID(next)
	if _, ok := old.keys[id]; ok && id == old.current {
		return nil, 0, errors.New("the new master key is the current one")
	}
	both := &Keyring{current: id, keys: map[string][]byte{id: next}, path: old.path}
	for kid, k := range old.keys {
		both.keys[kid] = k
	}
	if !old.FromEnv() {
		if err := both.write(false); err != nil {
			return nil, 0, fmt.Errorf("write the new master key: %w", err)
		}
	}
	n, err := s.ResealCredentials(ctx, func(workspaceID, destID string, c store.Credential) (store.Credential, error) {
		secret, err := both.Open(workspaceID, destID, c)
		if err != nil {
			return store.Credential{}, err
		}
		return both.Seal(workspaceID, destID, secret)
	})
	if err != nil {
		// Credentials are still under their old keys, which the file still
		// holds; the new key stays in it as the current one, unused.
		return nil, 0, err
	}
	only := &Keyring{current: id, keys: map[string][]byte{id: next}, path: old.path}
	if !old.FromEnv() {
		if err := only.write(false); err != nil {
			return nil, n, fmt.Errorf("credentials are re-encrypted, but the old key could not be removed from %s: %w", old.path, err)
		}
	}
	return only, n, nil
}
