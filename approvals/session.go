package approvals

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"sync"
	"time"
)

// DefaultSessionTTL is how long a web queue sign-in lasts.
const DefaultSessionTTL = 8 * time.Hour

// maxSessions bounds the sessions held in memory; past it the session
// closest to its expiry is ended to make room.
const maxSessions = 10000

// session is one signed-in browser. It is bound to the API key that signed
// in: every request re-reads that key's principal, so revoking the key (or
// its expiry, or a role change) applies to the session at its next request.
type session struct {
	keyID   string
	csrf    string
	expires time.Time
}

// sessions holds the web queue's sessions in memory, keyed by the SHA-256
// of the cookie value, so the table holds nothing a browser could present.
// A restart ends every session: people sign in again.
type sessions struct {
	mu   sync.Mutex
	byID map[[sha256.Size]byte]session
	ttl  time.Duration
	now  func() time.Time
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &sessions{byID: make(map[[sha256.Size]byte]session), ttl: ttl, now: now}
}

// create starts a session for keyID and returns its cookie value.
func (s *sessions) create(keyID string) (string, session, error) {
	id, err := randomToken()
	if err != nil {
		return "", session{}, err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", session{}, err
	}
	now := s.now()
	sess := session{keyID: keyID, csrf: csrf, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= maxSessions {
		s.sweep(now)
	}
	s.byID[sha256.Sum256([]byte(id))] = sess
	return id, sess, nil
}

// sweep ends expired sessions and, when the table is still full, the one
// closest to expiry. The caller holds mu.
func (s *sessions) sweep(now time.Time) {
	var oldest [sha256.Size]byte
	var oldestAt time.Time
	for d, sess := range s.byID {
		if !now.Before(sess.expires) {
			delete(s.byID, d)
			continue
		}
		if oldestAt.IsZero() || sess.expires.Before(oldestAt) {
			oldest, oldestAt = d, sess.expires
		}
	}
	if len(s.byID) >= maxSessions {
		delete(s.byID, oldest)
	}
}

// get returns the live session of a cookie value.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	d := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[d]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(sess.expires) {
		delete(s.byID, d)
		return session{}, false
	}
	return sess, true
}

// end ends the session of a cookie value, if any.
func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.byID, sha256.Sum256([]byte(id)))
	s.mu.Unlock()
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// tokensEqual compares a presented token with the expected one in constant
// time. An empty expected token matches nothing.
func tokensEqual(presented, expected string) bool {
	if expected == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(presented), []byte(expected)) == 1
}
