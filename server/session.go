package server

import (
	"crypto/rand"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
)

// maxSessions bounds the session ids remembered; past it the least recently
// used are forgotten (their clients get 404 and start a new session, as MCP
// clients do).
const maxSessions = 10000

// maxSessionIDLen bounds a presented session id kept in an audit event.
const maxSessionIDLen = 128

// sessions binds MCP session ids (protocol versions before 2026-07-28,
// which have sessions) to the API key that opened them. mcp-go's own
// session manager accepts ids it never issued and ids already ended, and
// lets any caller end any session: here an id is valid only for the key it
// was issued to, until that key ends it. A request with an id that is
// unknown, ended or another key's gets 404, as for an unknown session, so
// a key learns nothing of other keys' sessions; the refusal is audited.
//
// It is an mcpserver.SessionIdManagerResolver: mcp-go asks it for a
// manager per request, and the manager it returns knows the request's key
// (HTTP authenticates before MCP runs). Ids live in memory: a restart ends
// every session, as it does mcp-go's.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*boundSession
}

// boundSession is one issued session id.
type boundSession struct {
	keyID    string
	lastUsed time.Time
}

func newSessions() *sessions {
	return &sessions{byID: make(map[string]*boundSession)}
}

var _ mcpserver.SessionIdManagerResolver = (*sessions)(nil)

// ResolveSessionIdManager returns the session manager of r's key. Without
// a request (mcp-go's idle sweeper) or a key, the manager can end sessions
// but validates none.
func (s *sessions) ResolveSessionIdManager(r *http.Request) mcpserver.SessionIdManager {
	m := &keySessions{sessions: s}
	if r != nil {
		if c, ok := r.Context().Value(credentialKey{}).(credential); ok && c.principal != nil {
			m.keyID = c.principal.KeyID
		}
	}
	return m
}

// owns reports whether id is a live session of keyID, noting its use.
func (s *sessions) owns(id, keyID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.byID[id]
	if !ok || keyID == "" || b.keyID != keyID {
		return false
	}
	b.lastUsed = time.Now()
	return true
}

// issue remembers a new id for keyID, forgetting the least recently used
// id when full.
func (s *sessions) issue(id, keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= maxSessions {
		var oldest string
		var at time.Time
		for sid, b := range s.byID {
			if oldest == "" || b.lastUsed.Before(at) {
				oldest, at = sid, b.lastUsed
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[id] = &boundSession{keyID: keyID, lastUsed: time.Now()}
}

// end forgets id; an ended id is unknown from then on.
func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

// keySessions is the mcpserver.SessionIdManager of one request's key.
type keySessions struct {
	*sessions
	keyID string
}

var errSession = errors.New("unknown session")

// Generate issues a new random session id bound to the request's key.
func (m *keySessions) Generate() string {
	id := "mcp-session-" + rand.Text()
	if m.keyID != "" {
		m.issue(id, m.keyID)
	}
	return id
}

// Validate accepts only a live id of the request's key; mcp-go answers 404
// to the error.
func (m *keySessions) Validate(id string) (bool, error) {
	if !m.owns(id, m.keyID) {
		return false, errSession
	}
	return false, nil
}

// Terminate ends a session. bindSession lets a DELETE through only for the
// key's own session; the idle sweeper (no key) ends any.
func (m *keySessions) Terminate(id string) (bool, error) {
	m.end(id)
	return false, nil
}

// bindSession refuses, before mcp-go sees it, a request on /mcp that
// presents a session id that is not a live session of its key: 404, as for
// an unknown session, audited with the presented id. It runs after
// authentication (protectMCP). Protocol versions from 2026-07-28 have no
// sessions and ignore the header, so their requests pass.
func (s *Server) bindSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(mcpserver.HeaderKeySessionID)
		c, _ := r.Context().Value(credentialKey{}).(credential)
		if id == "" || mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)) ||
			c.principal != nil && s.sessions.owns(id, c.principal.KeyID) {
			next.ServeHTTP(w, r)
			return
		}
		ev := s.gate.event(r.Context(), "", nil, time.Now())
		ev.Action, ev.Reason = "mcp.session", "session id unknown, ended or opened by another key"
		if len(id) > maxSessionIDLen {
			id = id[:maxSessionIDLen]
		}
		ev.SessionID = id
		if c.principal != nil {
			setActor(ev, *c.principal)
		} else {
			ev.ActorType = "unknown"
		}
		s.refuse(w, r, ev, http.StatusNotFound, "Session not found: start a new session with initialize")
	})
}
