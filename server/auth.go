package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/signalsmith/agent-server/store"
	"golang.org/x/crypto/bcrypt"
)

// API key format: "ss_" + 12 lookup characters + "_" + 52 secret characters,
// all lowercase base32. The part before the second underscore is the prefix:
// stored in clear, unique, shown in listings and audit records. The secret is
// only ever held by its owner; the store keeps its bcrypt hash.
const (
	keyScheme    = "ss_"
	lookupLen    = 12
	secretBytes  = 32
	prefixLen    = len(keyScheme) + lookupLen
	secretLen    = 52 // base32 of 32 bytes, unpadded
	keyLen       = prefixLen + 1 + secretLen
	defaultCost  = bcrypt.DefaultCost
	maxCacheKeys = 10000
)

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrUnauthenticated means the presented API key is missing, malformed,
// unknown, wrong, revoked or expired. Callers show one generic message for
// all of these so a guesser learns nothing; the audit record keeps the reason.
var ErrUnauthenticated = errors.New("invalid, revoked or expired API key")

// NewKeySecret generates a new API key. It returns the full key (to show
// once), its public prefix and the bcrypt hash of its secret at the given
// cost (0 means bcrypt.DefaultCost).
func NewKeySecret(cost int) (key, prefix string, hash []byte, err error) {
	if cost == 0 {
		cost = defaultCost
	}
	lookup := make([]byte, 8)
	secret := make([]byte, secretBytes)
	if _, err := rand.Read(lookup); err != nil {
		return "", "", nil, fmt.Errorf("generate key: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", "", nil, fmt.Errorf("generate key: %w", err)
	}
	prefix = keyScheme + keyEncoding.EncodeToString(lookup)[:lookupLen]
	secretText := keyEncoding.EncodeToString(secret)
	hash, err = bcrypt.GenerateFromPassword([]byte(secretText), cost)
	if err != nil {
		return "", "", nil, fmt.Errorf("hash key: %w", err)
	}
	return prefix + "_" + secretText, prefix, hash, nil
}

// splitKey returns the prefix and secret of a well-formed key.
func splitKey(key string) (prefix, secret string, ok bool) {
	if len(key) != keyLen || !strings.HasPrefix(key, keyScheme) || key[prefixLen] != '_' {
		return "", "", false
	}
	for _, c := range key[len(keyScheme):prefixLen] + key[prefixLen+1:] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", "", false
		}
	}
	return key[:prefixLen], key[prefixLen+1:], true
}

// KeyPrefix returns the public prefix of a well-formed key, "" otherwise. It
// is what audit records and logs may show of a presented key.
func KeyPrefix(key string) string {
	prefix, _, ok := splitKey(key)
	if !ok {
		return ""
	}
	return prefix
}

// MaskKey is how a key is displayed after creation: its prefix and stars.
func MaskKey(prefix string) string { return prefix + "_****" }

// AuthFailure is an authentication failure with the reason kept for the
// audit record. Its Error text is the generic ErrUnauthenticated message.
type AuthFailure struct {
	Prefix string
	Reason string
}

func (f *AuthFailure) Error() string { return ErrUnauthenticated.Error() }

// Unwrap makes errors.Is(err, ErrUnauthenticated) true.
func (f *AuthFailure) Unwrap() error { return ErrUnauthenticated }

// Authenticator verifies API keys. bcrypt costs tens of milliseconds, so a
// verified key is cached in memory (by the SHA-256 of the whole key) for a
// short time; the key's status, member, role and groups still come from
// the store's Principal on every call. The SQLite store keeps principals in
// memory under its auth version, which every revocation, rotation, role,
// member, group and filter change bumps and which it reads once per call,
// so those changes apply on the next call, also when another process (the
// CLI) made them, while an unchanged key costs no query but that version
// read.
type Authenticator struct {
	store Principals
	ttl   time.Duration
	now   func() time.Time

	mu    sync.RWMutex // concurrent calls look keys up in parallel
	cache map[[sha256.Size]byte]cachedKey
}

// Principals is the part of store.Keys that authentication reads: a key by
// its lookup prefix and the principal behind it now.
type Principals interface {
	KeyByPrefix(ctx context.Context, prefix string) (store.Key, error)
	Principal(ctx context.Context, keyID string, now time.Time) (store.Principal, error)
}

type cachedKey struct {
	keyID   string
	expires time.Time
}

// NewAuthenticator returns an Authenticator over s that trusts a verified key
// for ttl (a minute when zero) before checking its bcrypt hash again.
func NewAuthenticator(s Principals, ttl time.Duration) *Authenticator {
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &Authenticator{store: s, ttl: ttl, now: time.Now, cache: make(map[[sha256.Size]byte]cachedKey)}
}

// Authenticate returns the principal behind key. Every failure is an
// *AuthFailure (errors.Is ErrUnauthenticated) except store failures, which
// are wrapped internal errors.
func (a *Authenticator) Authenticate(ctx context.Context, key string) (store.Principal, error) {
	prefix, secret, ok := splitKey(key)
	if !ok {
		return store.Principal{}, &AuthFailure{Reason: "malformed or missing API key"}
	}
	now := a.now()
	digest := sha256.Sum256([]byte(key))
	keyID, cached := a.lookup(digest, now)
	if !cached {
		k, err := a.store.KeyByPrefix(ctx, prefix)
		if errors.Is(err, store.ErrNotFound) {
			// Spend the same time as a real check so unknown prefixes
			// cannot be told from wrong secrets by timing.
			_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(secret))
			return store.Principal{}, &AuthFailure{Prefix: prefix, Reason: "unknown key prefix"}
		}
		if err != nil {
			return store.Principal{}, fmt.Errorf("authenticate: %w", err)
		}
		if bcrypt.CompareHashAndPassword(k.Hash, []byte(secret)) != nil {
			return store.Principal{}, &AuthFailure{Prefix: prefix, Reason: "wrong secret"}
		}
		if !k.Active(now) {
			reason := "key expired"
			if k.RevokedAt != nil {
				reason = "key revoked"
			}
			return store.Principal{}, &AuthFailure{Prefix: prefix, Reason: reason}
		}
		keyID = k.ID
		a.remember(digest, keyID, now)
	}
	p, err := a.store.Principal(ctx, keyID, now)
	if errors.Is(err, store.ErrNotFound) {
		a.forget(digest)
		return store.Principal{}, &AuthFailure{Prefix: prefix, Reason: "key revoked or expired"}
	}
	if err != nil {
		return store.Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	return p, nil
}

func (a *Authenticator) lookup(digest [sha256.Size]byte, now time.Time) (string, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	c, ok := a.cache[digest]
	if !ok || now.After(c.expires) {
		return "", false
	}
	return c.keyID, true
}

func (a *Authenticator) remember(digest [sha256.Size]byte, keyID string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxCacheKeys {
		for d, c := range a.cache {
			if now.After(c.expires) {
				delete(a.cache, d)
			}
		}
		if len(a.cache) >= maxCacheKeys {
			clear(a.cache)
		}
	}
	a.cache[digest] = cachedKey{keyID: keyID, expires: now.Add(a.ttl)}
}

func (a *Authenticator) forget(digest [sha256.Size]byte) {
	a.mu.Lock()
	delete(a.cache, digest)
	a.mu.Unlock()
}

// dummyHash is a bcrypt hash of a random secret, used to equalise timing.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("signalsmith-timing-equaliser"), defaultCost)
	if err != nil {
		panic(err)
	}
	return h
})
